"""The safety layer without ROS: soft start, bounds, watchdog, non-finite values, falls, e-stop latching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from a1_contract import get_contract
from robot_bridge.safety import SafetyConfig, SafetyController, SafetyStatus, StateSample

CONTRACT = get_contract()
DT = CONTRACT.policy_dt
DEFAULT = np.asarray(CONTRACT.default_joint_pos)
UPRIGHT = np.array([0.0, 0.0, -1.0])
# Inside the soft limits, 0.6 rad from the default pose at most.
CROUCHED = DEFAULT + np.repeat([0.1, 0.6, 0.4], 4) * np.array([1, -1, 1, -1] * 3)


def sample(now: float, pose=CROUCHED, gravity=UPRIGHT, **extras) -> StateSample:
    return StateSample(now, np.asarray(pose, float), np.asarray(gravity, float), extras)


def never() -> np.ndarray:
    raise AssertionError("the policy must not run here")


def run_soft_start(safety: SafetyController, pose=CROUCHED, t0: float = 0.0, max_ticks: int = 500):
    """Tick with a fixed measured pose until the policy would run; returns (commands, time of the next tick)."""
    commands, t = [], t0
    for _ in range(max_ticks):
        decision = safety.step(t, sample(t, pose), never)
        assert decision.status is SafetyStatus.SOFT_START, decision
        commands.append(decision.command)
        t += DT
        if not safety._m.soft_starting:
            return commands, t
    raise AssertionError("soft start did not finish")


def test_no_state_means_no_command():
    decision = SafetyController(CONTRACT).step(0.0, None, never)
    assert decision.command is None and decision.status is SafetyStatus.WAITING_FOR_STATE


def test_soft_start_reaches_the_default_pose_within_the_per_tick_bound_then_hands_over():
    config = SafetyConfig(max_delta_per_tick=0.05, soft_start_speed=1.0, soft_start_hold_s=0.2)
    safety = SafetyController(CONTRACT, config)
    commands, t = run_soft_start(safety)
    steps = np.abs(np.diff(np.vstack([CROUCHED, *commands]), axis=0)).max(axis=1)
    assert steps.max() <= min(config.max_delta_per_tick, config.soft_start_speed * DT) + 1e-12
    np.testing.assert_array_equal(commands[-1], DEFAULT)
    at_default = sum(np.array_equal(c, DEFAULT) for c in commands)
    assert at_default == round(config.soft_start_hold_s / DT) + 1
    assert len(commands) - at_default == round(0.6 / (config.soft_start_speed * DT)) - 1
    decision = safety.step(t, sample(t, DEFAULT), lambda: DEFAULT + 0.01)
    assert decision.status is SafetyStatus.RUNNING and decision.policy_ran
    np.testing.assert_allclose(decision.command, DEFAULT + 0.01)


def test_policy_targets_are_bounded_per_tick_and_clamped_to_soft_limits():
    config = SafetyConfig(max_delta_per_tick=0.1, soft_start_hold_s=0.0, soft_start_speed=100.0)
    safety = SafetyController(CONTRACT, config)
    _, t = run_soft_start(safety, DEFAULT)
    soft = CONTRACT.soft_joint_pos_limits()
    previous = DEFAULT
    for k in range(40):
        wild = DEFAULT + (5.0 if k < 20 else -5.0) * np.ones(12)
        decision = safety.step(t, sample(t, DEFAULT), lambda w=wild: w)
        assert decision.status is SafetyStatus.RUNNING
        assert np.abs(decision.command - previous).max() <= config.max_delta_per_tick + 1e-12
        assert (decision.command >= soft[:, 0]).all() and (decision.command <= soft[:, 1]).all()
        previous, t = decision.command, t + DT
    counters = safety.counters
    assert counters["delta_bounded"] == 40 and counters["clamped_to_limits"] > 0


def test_stale_state_gives_a_damping_command_and_recovers_through_a_soft_start():
    config = SafetyConfig(watchdog_timeout_s=0.1, soft_start_hold_s=0.0, soft_start_speed=100.0)
    safety = SafetyController(CONTRACT, config)
    _, t = run_soft_start(safety, DEFAULT)
    measured = DEFAULT + 0.02
    assert safety.step(t, sample(t, measured), lambda: DEFAULT).status is SafetyStatus.RUNNING
    last = sample(t, measured)
    decision = safety.step(t + 0.099, last, lambda: DEFAULT)
    assert decision.status is SafetyStatus.RUNNING
    decision = safety.step(t + 0.101, last, never)
    assert decision.status is SafetyStatus.STALE_STATE and "watchdog" in decision.reason
    np.testing.assert_array_equal(decision.command, measured)  # damping: hold the last measured pose
    assert safety.latched is None
    decision = safety.step(t + 0.2, sample(t + 0.2, measured), never)
    assert decision.status is SafetyStatus.SOFT_START


@pytest.mark.parametrize("field", ["joint_pos", "projected_gravity", "joint_vel"])
def test_nonfinite_state_is_a_latched_safe_stop(field):
    safety = SafetyController(CONTRACT, SafetyConfig(soft_start_hold_s=0.0, soft_start_speed=100.0))
    _, t = run_soft_start(safety, DEFAULT)
    pose, gravity, extras = DEFAULT.copy(), UPRIGHT.copy(), {"joint_vel": np.zeros(12)}
    {"joint_pos": pose, "projected_gravity": gravity, "joint_vel": extras["joint_vel"]}[field][1] = np.nan
    decision = safety.step(t, sample(t, pose, gravity, **extras), never)
    assert decision.status is SafetyStatus.NONFINITE_STATE and field in decision.reason
    assert np.isfinite(decision.command).all()
    np.testing.assert_array_equal(decision.command, DEFAULT)  # the last finite pose
    later = safety.step(t + DT, sample(t + DT, DEFAULT), never)
    assert later.status is SafetyStatus.NONFINITE_STATE, "latched until reset"
    assert safety.reset() is SafetyStatus.NONFINITE_STATE
    assert safety.step(t + 2 * DT, sample(t + 2 * DT, DEFAULT), never).status is SafetyStatus.SOFT_START


@pytest.mark.parametrize(
    ("policy", "status"),
    [
        (lambda: np.full(12, np.nan), SafetyStatus.NONFINITE_ACTION),
        (lambda: np.zeros(3), SafetyStatus.NONFINITE_ACTION),
        (lambda: 1 / 0, SafetyStatus.POLICY_ERROR),
    ],
)
def test_bad_policy_output_is_a_latched_safe_stop(policy, status):
    safety = SafetyController(CONTRACT, SafetyConfig(soft_start_hold_s=0.0, soft_start_speed=100.0))
    _, t = run_soft_start(safety, DEFAULT)
    decision = safety.step(t, sample(t, DEFAULT), policy)
    assert decision.status is status and safety.latched is status
    np.testing.assert_array_equal(decision.command, DEFAULT)


def test_fall_detected_from_the_gravity_vector():
    safety = SafetyController(CONTRACT, SafetyConfig(fall_tilt_rad=1.0, soft_start_hold_s=0.0, soft_start_speed=100.0))
    _, t = run_soft_start(safety, DEFAULT)
    tilted = lambda angle: np.array([math.sin(angle), 0.0, -math.cos(angle)])  # noqa: E731
    assert safety.step(t, sample(t, DEFAULT, tilted(0.9)), lambda: DEFAULT).status is SafetyStatus.RUNNING
    decision = safety.step(t + DT, sample(t + DT, DEFAULT, tilted(1.1)), never)
    assert decision.status is SafetyStatus.FALLEN and "63 deg" in decision.reason
    assert safety.step(t + 2 * DT, sample(t + 2 * DT, DEFAULT), never).status is SafetyStatus.FALLEN


def test_estop_latches_until_reset_and_counts_events():
    safety = SafetyController(CONTRACT, SafetyConfig(soft_start_hold_s=0.0, soft_start_speed=100.0))
    _, t = run_soft_start(safety, DEFAULT)
    safety.step(t, sample(t, DEFAULT), lambda: DEFAULT)
    safety.estop("operator")
    for k in range(5):
        decision = safety.step(t + k * DT, sample(t + k * DT, DEFAULT + 0.01), never)
        assert decision.status is SafetyStatus.ESTOP and decision.reason == "operator"
    np.testing.assert_array_equal(decision.command, DEFAULT + 0.01)
    assert safety.reset() is SafetyStatus.ESTOP and safety.latched is None
    assert safety.step(t + 6 * DT, sample(t + 6 * DT, DEFAULT), never).status is SafetyStatus.SOFT_START
    counters = safety.counters
    assert counters["entered:estop"] == 1 and counters["ticks:estop"] == 5
    assert counters["entered:soft_start"] == 2 and counters["entered:running"] == 1
