"""The A1 task contract: JSON round trip, hash, diff, variants, action mapping and the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from a1_contract import (
    SCHEMA_VERSION,
    VARIANTS,
    ActionBounds,
    ContractError,
    TaskContract,
    get_contract,
)

SDK_MOTOR_INDEX = [3, 0, 9, 6, 4, 1, 10, 7, 5, 2, 11, 8]
ISAAC_FLAT_LAYOUT = {
    "base_lin_vel": (0, 3),
    "base_ang_vel": (3, 6),
    "projected_gravity": (6, 9),
    "velocity_commands": (9, 12),
    "joint_pos": (12, 24),
    "joint_vel": (24, 36),
    "actions": (36, 48),
}


@pytest.fixture(scope="module")
def base() -> TaskContract:
    return get_contract()


def _with_index(values: tuple, i: int, value) -> tuple:
    out = list(values)
    out[i] = value
    return tuple(out)


def _set_obs_noise(c: TaskContract, name: str, noise: float) -> TaskContract:
    terms = tuple(dataclasses.replace(t, noise=noise) if t.name == name else t for t in c.obs_terms)
    return c.replace(obs_terms=terms)


# (description, change, top-level JSON keys expected to differ)
CHANGES = [
    (
        "default_joint_pos",
        lambda c: c.replace(default_joint_pos=_with_index(c.default_joint_pos, 4, 0.81)),
        {"default_joint_pos"},
    ),
    ("kp", lambda c: c.replace(kp=_with_index(c.kp, 0, 26.0)), {"kp"}),
    ("kd", lambda c: c.replace(kd=_with_index(c.kd, 11, 0.6)), {"kd"}),
    ("effort_limit", lambda c: c.replace(effort_limit=_with_index(c.effort_limit, 3, 30.0)), {"effort_limit"}),
    (
        "joint_pos_limits",
        lambda c: c.replace(joint_pos_limits=_with_index(c.joint_pos_limits, 8, (-2.6, -0.9))),
        {"joint_pos_limits"},
    ),
    (
        "action_bounds_high",
        lambda c: c.replace(
            action_bounds=ActionBounds(
                c.action_bounds.low, _with_index(c.action_bounds.high, 2, 0.8), c.action_bounds.method
            )
        ),
        {"action_bounds"},
    ),
    (
        "action_bounds_method",
        lambda c: c.replace(action_bounds=dataclasses.replace(c.action_bounds, method="explicit")),
        {"action_bounds"},
    ),
    ("action_scale", lambda c: c.replace(action_scale=0.5), {"action_scale"}),
    ("obs_noise", lambda c: _set_obs_noise(c, "joint_vel", 1.0), {"obs_terms"}),
    (
        "obs_scale",
        lambda c: c.replace(obs_terms=(dataclasses.replace(c.obs_terms[0], scale=2.0), *c.obs_terms[1:])),
        {"obs_terms"},
    ),
    ("reward_weight", lambda c: c.replace(rewards={**c.rewards, "feet_air_time": 0.3}), {"rewards"}),
    ("reward_param", lambda c: c.replace(reward_params={**c.reward_params, "tracking_std": 0.4}), {"reward_params"}),
    (
        "randomization",
        lambda c: c.replace(randomization=dataclasses.replace(c.randomization, push_interval_s=None)),
        {"randomization"},
    ),
    ("commands", lambda c: c.replace(commands=dataclasses.replace(c.commands, lin_vel_x=(-0.5, 1.0))), {"commands"}),
    (
        "terminations",
        lambda c: c.replace(terminations=dataclasses.replace(c.terminations, base_contact_threshold=2.0)),
        {"terminations"},
    ),
    ("decimation", lambda c: c.replace(decimation=2), {"decimation", "policy_rate_hz"}),
    ("sim_dt", lambda c: c.replace(sim_dt=0.004), {"sim_dt", "policy_rate_hz"}),
    ("episode_length_s", lambda c: c.replace(episode_length_s=10.0), {"episode_length_s"}),
    ("init_base_height", lambda c: c.replace(init_base_height=0.4), {"init_base_height"}),
    ("armature", lambda c: c.replace(armature=0.02), {"armature"}),
    ("soft_limit_factor", lambda c: c.replace(soft_joint_pos_limit_factor=0.95), {"soft_joint_pos_limit_factor"}),
    ("sdk_motor_index", lambda c: c.replace(sdk_motor_index=(0, 3, *c.sdk_motor_index[2:])), {"sdk_motor_index"}),
    ("name", lambda c: c.replace(name="other"), {"name"}),
]


# ---- JSON round trip and hash ----------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_json_round_trip_every_variant(variant: str) -> None:
    contract = get_contract(variant)
    text = contract.to_json()
    back = TaskContract.from_json(text)
    assert back == contract
    assert back.hash == contract.hash == json.loads(text)["hash"]
    assert back.diff(contract) == []
    assert TaskContract.from_json(contract.to_json(indent=None)) == contract
    assert TaskContract.from_dict(json.loads(text)).to_dict() == contract.to_dict()


def test_hash_is_sha256_of_canonical_json(base: TaskContract) -> None:
    doc = base.to_dict()
    body = {k: v for k, v in doc.items() if k not in ("hash", "sources")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert doc["hash"] == hashlib.sha256(canonical.encode()).hexdigest()[:16] == base.hash
    assert len(base.hash) == 16 and int(base.hash, 16) >= 0


def test_variant_hashes_are_distinct() -> None:
    hashes = {get_contract(v).hash for v in VARIANTS}
    assert len(hashes) == len(VARIANTS)


@pytest.mark.parametrize(("what", "change", "keys"), CHANGES, ids=[c[0] for c in CHANGES])
def test_any_field_change_changes_hash(base: TaskContract, what: str, change, keys: set[str]) -> None:
    changed = change(base)
    assert changed.hash != base.hash, what
    assert set(base.diff(changed)) == keys
    with pytest.raises(ContractError) as err:
        base.require_same(changed)
    for key in keys:
        assert key in str(err.value)
    # The changed contract still round-trips to itself.
    assert TaskContract.from_json(changed.to_json()) == changed


def test_sources_do_not_affect_hash(base: TaskContract) -> None:
    other = base.replace(sources={"task": "somewhere else", "note": "free text"})
    assert other.hash == base.hash
    assert base.diff(other) == []
    base.require_same(other)
    doc = base.to_dict()
    doc["sources"] = {"edited": "yes"}
    assert TaskContract.from_dict(doc).hash == base.hash


# ---- readers refuse bad documents -------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["kp"].__setitem__("FL_hip_joint", 30.0),
        lambda d: d["default_joint_pos"].__setitem__("RR_calf_joint", -1.4),
        lambda d: d["action_bounds"]["low"].__setitem__(0, -2.1),
        lambda d: d["obs_terms"][1].__setitem__("noise", 0.3),
        lambda d: d["rewards"].__setitem__("lin_vel_z_l2", -1.0),
        lambda d: d.__setitem__("decimation", 2),
        lambda d: d["randomization"].__setitem__("push_interval_s", None),
        lambda d: d.__setitem__("name", "renamed"),
    ],
)
def test_edited_document_with_old_hash_is_rejected(base: TaskContract, edit) -> None:
    doc = base.to_dict()
    edit(doc)
    with pytest.raises(ContractError, match="hash"):
        TaskContract.from_dict(doc)
    with pytest.raises(ContractError, match="hash"):
        TaskContract.from_json(json.dumps(doc))
    # Deliberate editing: skip the check, the result has a new hash.
    edited = TaskContract.from_dict(doc, verify_hash=False)
    assert edited.hash != base.hash


@pytest.mark.parametrize(("key", "value"), [("obs_dim", 47), ("policy_rate_hz", 100.0)])
def test_edited_derived_key_is_rejected(base: TaskContract, key: str, value) -> None:
    doc = base.to_dict()
    doc[key] = value
    with pytest.raises(ContractError, match=key):
        TaskContract.from_dict(doc)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version_is_rejected(base: TaskContract, version) -> None:
    doc = base.to_dict()
    doc["schema_version"] = version
    with pytest.raises(ContractError, match="schema_version"):
        TaskContract.from_dict(doc)
    del doc["schema_version"]
    with pytest.raises(ContractError, match="schema_version"):
        TaskContract.from_dict(doc)


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2, 3]", '"a string"', "null", "{}"])
def test_malformed_json_raises_contract_error(text: str) -> None:
    with pytest.raises(ContractError):
        TaskContract.from_json(text)


REQUIRED_READ_KEYS = [
    "name",
    "joint_names",
    "default_joint_pos",
    "joint_pos_limits",
    "soft_joint_pos_limit_factor",
    "kp",
    "kd",
    "effort_limit",
    "velocity_limit",
    "armature",
    "sdk_motor_index",
    "action_scale",
    "action_bounds",
    "obs_terms",
    "sim_dt",
    "decimation",
    "episode_length_s",
    "init_base_height",
    "commands",
    "rewards",
    "reward_params",
    "terminations",
    "randomization",
]


@pytest.mark.parametrize("key", REQUIRED_READ_KEYS)
def test_missing_key_raises_contract_error_not_key_error(base: TaskContract, key: str) -> None:
    doc = base.to_dict()
    del doc[key]
    with pytest.raises(ContractError):
        TaskContract.from_dict(doc)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["kp"].pop("RL_thigh_joint"),
        lambda d: d["action_bounds"].pop("high"),
        lambda d: d["action_bounds"]["low"].pop(),
        lambda d: d["obs_terms"][0].pop("dim"),
        lambda d: d.__setitem__("kd", [0.5] * 12),
        lambda d: d["joint_pos_limits"].__setitem__("FL_hip_joint", [1.0]),
        lambda d: d["joint_pos_limits"].__setitem__("FL_hip_joint", [1.0, -1.0]),
        lambda d: d["randomization"].__setitem__("unknown_field", 1.0),
        lambda d: d.__setitem__("sdk_motor_index", [0] * 12),
        lambda d: d.__setitem__("joint_names", d["joint_names"][:11]),
        lambda d: d["kp"].__setitem__("FL_hip_joint", "stiff"),
    ],
)
def test_malformed_values_raise_contract_error(base: TaskContract, edit) -> None:
    doc = base.to_dict()
    edit(doc)
    with pytest.raises(ContractError):
        TaskContract.from_dict(doc, verify_hash=False)


# ---- diff / require_same ----------------------------------------------------------------------------
def test_no_base_lin_vel_diff_names_obs_fields(base: TaskContract) -> None:
    variant = get_contract("no_base_lin_vel")
    assert variant.diff(base) == ["name", "obs_dim", "obs_terms"]
    with pytest.raises(ContractError, match="obs_terms") as err:
        base.require_same(variant)
    assert "obs_dim" in str(err.value)
    base.require_same(get_contract())


def _permuted(c: TaskContract, order: list[int]) -> TaskContract:
    """The same robot with its joints listed in another order (every per-joint field permuted consistently)."""

    def p(values):
        return tuple(values[i] for i in order)

    return c.replace(
        joint_names=p(c.joint_names),
        default_joint_pos=p(c.default_joint_pos),
        joint_pos_limits=p(c.joint_pos_limits),
        kp=p(c.kp),
        kd=p(c.kd),
        effort_limit=p(c.effort_limit),
        velocity_limit=p(c.velocity_limit),
        sdk_motor_index=p(c.sdk_motor_index),
        action_bounds=ActionBounds(p(c.action_bounds.low), p(c.action_bounds.high), c.action_bounds.method),
    )


def test_changed_joint_order_differs_in_joint_names(base: TaskContract) -> None:
    # Newton/MJWarp order: grouped by leg.
    by_leg = sorted(range(12), key=lambda i: (base.joint_names[i][:2], i))
    other = _permuted(base, by_leg)
    assert other.joint_names[:3] == ("FL_hip_joint", "FL_thigh_joint", "FL_calf_joint")
    assert other.hash != base.hash
    diff = base.diff(other)
    assert "joint_names" in diff
    # Per-joint maps are keyed by name, so they are the same robot facts in either order.
    assert "default_joint_pos" not in diff and "kp" not in diff
    with pytest.raises(ContractError, match="joint_names"):
        base.require_same(other, what="policy")


# ---- variants -----------------------------------------------------------------------------------------
def test_no_base_lin_vel_variant_is_derived(base: TaskContract) -> None:
    variant = get_contract("no_base_lin_vel")
    assert variant.obs_dim == 45
    assert [t.name for t in variant.obs_terms] == [t.name for t in base.obs_terms if t.name != "base_lin_vel"]
    assert variant.obs_terms == base.obs_terms[1:]
    for f in dataclasses.fields(TaskContract):
        if f.name not in ("name", "obs_terms"):
            assert getattr(variant, f.name) == getattr(base, f.name), f.name
    assert variant.obs_slices()["joint_pos"] == slice(9, 21)
    assert variant.obs_slices()["actions"] == slice(33, 45)


def test_without_obs_terms_rejects_unknown_term(base: TaskContract) -> None:
    with pytest.raises(ContractError, match="height_scan"):
        base.without_obs_terms("height_scan")


def test_other_variants_change_only_their_fields(base: TaskContract) -> None:
    assert get_contract("isaaclab2").diff(base) == ["name", "randomization"]
    assert get_contract("isaaclab3_unit_bounds").diff(base) == ["action_bounds", "name"]
    unit = get_contract("isaaclab3_unit_bounds").action_bounds
    assert unit.low == (-1.0,) * 12 and unit.high == (1.0,) * 12


def test_unknown_variant_is_contract_error() -> None:
    with pytest.raises(ContractError, match="unknown contract variant"):
        get_contract("nope")


# ---- document content -------------------------------------------------------------------------------
def test_required_top_level_keys(base: TaskContract) -> None:
    doc = base.to_dict()
    for key in [
        "schema_version",
        "name",
        "hash",
        "joint_names",
        "default_joint_pos",
        "kp",
        "kd",
        "effort_limit",
        "action_scale",
        "action_bounds",
        "obs_terms",
        "sim_dt",
        "decimation",
        "episode_length_s",
        "rewards",
        "sdk_motor_index",
        "sources",
    ]:
        assert key in doc, key
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    joints = doc["joint_names"]
    assert len(joints) == 12
    for key in ("default_joint_pos", "kp", "kd", "effort_limit"):
        assert list(doc[key]) == joints, key  # keyed by joint name
    assert len(doc["action_bounds"]["low"]) == len(doc["action_bounds"]["high"]) == 12
    assert all(lo < hi for lo, hi in zip(doc["action_bounds"]["low"], doc["action_bounds"]["high"], strict=True))
    assert isinstance(doc["obs_terms"], list)
    for term in doc["obs_terms"]:
        assert isinstance(term, dict)
        assert {"name", "dim", "scale", "noise"} <= set(term)
    assert doc["obs_dim"] == sum(t["dim"] for t in doc["obs_terms"]) == 48
    assert isinstance(doc["rewards"], dict) and doc["rewards"]


def test_obs_layout_is_isaac_lab_flat(base: TaskContract) -> None:
    slices = base.obs_slices()
    assert list(slices) == list(ISAAC_FLAT_LAYOUT)
    for name, (start, stop) in ISAAC_FLAT_LAYOUT.items():
        assert (slices[name].start, slices[name].stop) == (start, stop), name
    noise = {t.name: t.noise for t in base.obs_terms}
    assert noise == {
        "base_lin_vel": 0.1,
        "base_ang_vel": 0.2,
        "projected_gravity": 0.05,
        "velocity_commands": 0.0,
        "joint_pos": 0.01,
        "joint_vel": 1.5,
        "actions": 0.0,
    }
    assert all(t.scale == 1.0 and t.clip is None for t in base.obs_terms)


def test_joint_order_and_defaults(base: TaskContract) -> None:
    assert base.joint_names == tuple(
        f"{leg}_{part}_joint" for part in ("hip", "thigh", "calf") for leg in ("FL", "FR", "RL", "RR")
    )
    doc = base.to_dict()
    assert doc["default_joint_pos"] == {
        "FL_hip_joint": 0.1,
        "FR_hip_joint": -0.1,
        "RL_hip_joint": 0.1,
        "RR_hip_joint": -0.1,
        "FL_thigh_joint": 0.8,
        "FR_thigh_joint": 0.8,
        "RL_thigh_joint": 1.0,
        "RR_thigh_joint": 1.0,
        "FL_calf_joint": -1.5,
        "FR_calf_joint": -1.5,
        "RL_calf_joint": -1.5,
        "RR_calf_joint": -1.5,
    }
    assert set(base.kp) == {25.0} and set(base.kd) == {0.5} and set(base.effort_limit) == {33.5}
    assert base.action_scale == 0.25


def test_sdk_motor_index(base: TaskContract) -> None:
    assert list(base.sdk_motor_index) == SDK_MOTOR_INDEX
    # SDK order FR_0..2, FL_0..2, RR_0..2, RL_0..2 (0 = hip, 1 = thigh, 2 = calf).
    sdk_names = [f"{leg}_{part}_joint" for leg in ("FR", "FL", "RR", "RL") for part in ("hip", "thigh", "calf")]
    for i, name in enumerate(base.joint_names):
        assert sdk_names[base.sdk_motor_index[i]] == name


def test_rates_and_episode_length(base: TaskContract) -> None:
    assert base.max_episode_steps == 1000
    assert base.policy_rate_hz == 50
    assert base.policy_dt == pytest.approx(0.02)
    assert base.to_dict()["policy_rate_hz"] == 50


# ---- action mapping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_action_bounds_inverse_and_endpoints(variant: str) -> None:
    bounds = get_contract(variant).action_bounds
    low, high = np.asarray(bounds.low), np.asarray(bounds.high)
    np.testing.assert_allclose(bounds.to_raw(-np.ones(12)), low)
    np.testing.assert_allclose(bounds.to_raw(np.ones(12)), high)
    np.testing.assert_allclose(bounds.to_raw(np.zeros(12)), 0.5 * (low + high))
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, size=(64, 12))
    np.testing.assert_allclose(bounds.to_normalized(bounds.to_raw(a)), a, atol=1e-12)
    raw = rng.uniform(low, high, size=(64, 12))
    np.testing.assert_allclose(bounds.to_raw(bounds.to_normalized(raw)), raw, atol=1e-12)


def test_joint_targets(base: TaskContract) -> None:
    low, high = np.asarray(base.action_bounds.low), np.asarray(base.action_bounds.high)
    default = np.asarray(base.default_joint_pos)
    np.testing.assert_allclose(base.joint_targets(np.zeros(12)), default + 0.25 * 0.5 * (low + high))
    np.testing.assert_allclose(base.joint_targets(np.ones(12)), default + 0.25 * high)
    np.testing.assert_allclose(base.joint_targets(-np.ones(12)), default + 0.25 * low)
    unit = get_contract("isaaclab3_unit_bounds")
    np.testing.assert_allclose(unit.joint_targets(np.zeros(12)), default)
    np.testing.assert_allclose(unit.joint_targets(np.ones(12)), default + 0.25)
    action = np.linspace(-1, 1, 12)
    np.testing.assert_allclose(base.raw_joint_targets(base.action_bounds.to_raw(action)), base.joint_targets(action))


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ((0.0,) * 12, (0.0,) * 12),
        ((1.0,) * 12, (-1.0,) * 12),
        ((-1.0,) * 12, (1.0,) * 11 + (-2.0,)),
        ((-1.0,) * 12, (1.0,) * 11),
    ],
)
def test_invalid_bounds_raise(low, high) -> None:
    with pytest.raises(ContractError):
        ActionBounds(low, high)


def test_invalid_symmetric_width_and_bounds_length(base: TaskContract) -> None:
    with pytest.raises(ContractError):
        ActionBounds.symmetric(0.0)
    with pytest.raises(ContractError, match="action_bounds"):
        base.replace(action_bounds=ActionBounds.symmetric(1.0, 11))


# ---- console script ---------------------------------------------------------------------------------
def _cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "a1_contract", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_default_prints_valid_contract(base: TaskContract) -> None:
    doc = json.loads(_cli())
    assert doc["hash"] == base.hash
    assert TaskContract.from_dict(doc) == base


def test_cli_variant() -> None:
    doc = json.loads(_cli("--variant", "no_base_lin_vel"))
    contract = TaskContract.from_dict(doc)
    assert doc["hash"] == contract.hash == get_contract("no_base_lin_vel").hash
    assert doc["obs_dim"] == 45


def test_cli_hash_and_list() -> None:
    assert _cli("--hash").strip() == get_contract().hash
    lines = _cli("--list").strip().splitlines()
    assert len(lines) == len(VARIANTS)
    for line, name in zip(lines, VARIANTS, strict=True):
        fields = line.split()
        assert fields[0] == name and fields[1] == get_contract(name).hash
        assert f"obs_dim={get_contract(name).obs_dim}" in line


def test_document_without_hash_is_rejected_unless_asked(base: TaskContract) -> None:
    doc = base.to_dict()
    del doc["hash"]
    with pytest.raises(ContractError, match="no 'hash'"):
        TaskContract.from_dict(doc)
    assert TaskContract.from_dict(doc, verify_hash=False) == base


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_schema_version_must_be_an_integer(base: TaskContract, version) -> None:
    doc = base.to_dict()
    doc["schema_version"] = version
    with pytest.raises(ContractError, match="schema_version"):
        TaskContract.from_dict(doc)


def test_joint_target_limits_are_the_soft_limits_in_rad_and_raw_units(base: TaskContract) -> None:
    limits = base.joint_target_limits()
    np.testing.assert_allclose(limits, base.soft_joint_pos_limits())
    low, high = base.raw_target_limits()
    np.testing.assert_allclose(base.raw_joint_targets(low), limits[:, 0])
    np.testing.assert_allclose(base.raw_joint_targets(high), limits[:, 1])
    wild = np.array([[-10.0] * 12, [10.0] * 12])
    np.testing.assert_allclose(base.clamp_joint_targets(wild), limits.T)
    inside = np.asarray(base.default_joint_pos)
    np.testing.assert_array_equal(base.clamp_joint_targets(inside), inside)
