"""The A1 task contract: its values (observation layout, joint order, rates), diff, variants and action mapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from a1_contract import (
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


# ---- contract values -------------------------------------------------------------------------------
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
