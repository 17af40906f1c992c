"""The contract's JSON document: round trip, content hash, the readers' refusals, its keys, the CLI printing it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import pytest

from a1_contract import (
    SCHEMA_VERSION,
    VARIANTS,
    ActionBounds,
    ContractError,
    TaskContract,
    get_contract,
)


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
