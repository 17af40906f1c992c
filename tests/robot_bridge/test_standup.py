"""Fall detection and the stand-up controller: postures from gravity, belly-down falls in the emulator, refusals."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from a1_contract import get_contract
from robot_bridge.emulator import DynamicsGap, EmulatedA1
from robot_bridge.observation import projected_gravity_from_xyzw
from robot_bridge.standup import (
    Phase,
    Posture,
    StandUpConfig,
    StandUpController,
    classify_posture,
    is_fallen,
    tilt_rad,
)

CONTRACT = get_contract()
DT = CONTRACT.policy_dt
DEFAULT = np.asarray(CONTRACT.default_joint_pos)
UPRIGHT = np.array([0.0, 0.0, -1.0])
SOFT = CONTRACT.soft_joint_pos_limits()

_spec = importlib.util.spec_from_file_location(
    "standup_benchmark", Path(__file__).resolve().parents[2] / "benchmarks" / "standup.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)


def rolled(angle: float, axis: int = 0) -> np.ndarray:
    """Projected gravity of a trunk rotated by ``angle`` about its x (roll) or y (pitch) axis."""
    half = 0.5 * angle
    xyzw = [0.0, 0.0, 0.0, math.cos(half)]
    xyzw[axis] = math.sin(half)
    return projected_gravity_from_xyzw(xyzw)


def test_posture_from_synthetic_gravity_vectors():
    assert classify_posture(UPRIGHT) is Posture.UPRIGHT  # no height: orientation alone cannot say "belly"
    assert classify_posture(UPRIGHT, height=0.27) is Posture.UPRIGHT
    assert classify_posture(UPRIGHT, height=0.08) is Posture.BELLY
    assert classify_posture(9.81 * UPRIGHT, height=0.08) is Posture.BELLY  # any length
    assert classify_posture(rolled(0.4), height=0.1) is Posture.BELLY
    assert classify_posture(rolled(-0.4, axis=1)) is Posture.UPRIGHT
    for side in (rolled(math.pi / 2), rolled(-math.pi / 2), rolled(1.0), rolled(math.pi / 2, axis=1)):
        assert classify_posture(side, height=0.1) is Posture.SIDE, side
    for back in (np.array([0.0, 0.0, 1.0]), rolled(math.pi), rolled(math.pi, axis=1), rolled(2.5)):
        assert classify_posture(back) is Posture.BACK, back
    assert tilt_rad(rolled(0.3)) == pytest.approx(0.3)
    assert not is_fallen(UPRIGHT, 0.27) and is_fallen(UPRIGHT, 0.08) and is_fallen(rolled(math.pi))
    with pytest.raises(ValueError, match="projected_gravity"):
        classify_posture(np.array([np.nan, 0.0, -1.0]))
    with pytest.raises(ValueError, match="projected_gravity"):
        classify_posture(np.zeros(2))


def run_open_loop(controller, measured, gravity=UPRIGHT, now=0.0, dts=None, max_ticks=1000):
    """Tick with a fixed measured state until done; returns the decisions (the first from ``start``)."""
    decisions = [controller.start(now, measured, gravity)]
    for i in range(max_ticks):
        now += DT if dts is None else dts[i % len(dts)]
        decisions.append(controller.step(now, measured, gravity))
        if decisions[-1].done:
            return decisions
    raise AssertionError(f"not done after {max_ticks} ticks: {decisions[-1]}")


@pytest.mark.parametrize("dts", [None, [DT, DT, 0.25]], ids=["nominal_ticks", "late_ticks"])
def test_targets_stay_inside_the_limits_and_rate_limited(dts):
    config = StandUpConfig(max_delta_per_tick=0.05)
    measured = np.asarray(CONTRACT.joint_pos_limits)[:, 1].copy()  # every joint at its hard upper limit
    decisions = run_open_loop(StandUpController(CONTRACT, config), measured, dts=dts)
    targets = np.vstack([d.targets for d in decisions])
    hard = np.asarray(CONTRACT.joint_pos_limits)
    assert (targets >= hard[:, 0]).all() and (targets <= hard[:, 1]).all()
    # Outside the soft limits only while coming in from the measured pose, at the rate limit.
    coming_in = int(np.ceil(np.abs(measured - np.clip(measured, SOFT[:, 0], SOFT[:, 1])).max() / 0.05))
    assert coming_in >= 5
    inside = ((targets >= SOFT[:, 0] - 1e-12) & (targets <= SOFT[:, 1] + 1e-12)).all(axis=1)
    assert inside[coming_in:].all() and not inside[: coming_in - 1].any()
    steps = np.abs(np.diff(np.vstack([measured, targets]), axis=0)).max(axis=1)
    assert steps.max() <= config.max_delta_per_tick + 1e-12
    np.testing.assert_array_equal(targets[-1], DEFAULT)
    phases = [d.phase for d in decisions]
    assert [p for i, p in enumerate(phases) if i == 0 or p is not phases[i - 1]] == [
        Phase.FOLD, Phase.TUCK, Phase.RISE, Phase.HOLD, Phase.DONE
    ]  # fmt: skip
    assert all(d.refused is None for d in decisions)
    if dts is None:  # the slowest joint's min-jerk peak speed is exactly the bound: no tick was cut short
        assert steps.max() == pytest.approx(config.max_delta_per_tick, rel=0.02)


def test_refuses_back_and_side_and_aborts_when_the_trunk_tilts():
    controller = StandUpController(CONTRACT)
    back = controller.start(0.0, DEFAULT, rolled(math.pi))
    assert back.targets is None and back.phase is Phase.REFUSED and "turn the robot over" in back.refused
    assert controller.step(DT, DEFAULT, UPRIGHT).refused == back.refused  # stays refused until start()
    side = controller.start(0.0, DEFAULT, rolled(math.pi / 2))
    assert side.targets is None and "side" in side.refused
    assert controller.start(0.0, DEFAULT, UPRIGHT).targets is not None
    tipped = controller.step(DT, DEFAULT, rolled(1.2))
    assert tipped.targets is None and tipped.refused.startswith("aborted in fold: trunk tilted 69 deg")
    assert controller.step(2 * DT, DEFAULT, UPRIGHT).targets is None


def test_bad_inputs_are_refused_with_a_reason():
    controller = StandUpController(CONTRACT)
    assert controller.step(0.0, DEFAULT, UPRIGHT) == controller.step(0.0, DEFAULT, UPRIGHT)  # idle: nothing
    assert controller.step(0.0, DEFAULT, UPRIGHT).phase is Phase.IDLE
    nan_pose = DEFAULT.copy()
    nan_pose[3] = np.nan
    assert "non-finite joint_pos" in controller.start(0.0, nan_pose, UPRIGHT).refused
    assert "joint_pos must have 12" in controller.start(0.0, DEFAULT[:5], UPRIGHT).refused
    assert controller.start(0.0, DEFAULT, UPRIGHT).targets is not None
    assert "projected_gravity" in controller.step(DT, DEFAULT, np.zeros(3)).refused
    with pytest.raises(ValueError, match="max_delta_per_tick"):
        StandUpController(CONTRACT, StandUpConfig(max_delta_per_tick=0.0))


@pytest.mark.parametrize(
    ("gap_name", "trial"), [("nominal", 0), ("nominal", 1), ("nominal", 2), ("mass1.1_motor0.9", 3)]
)
def test_belly_down_falls_stand_up_within_the_deadline(gap_name, trial):
    gap = bench.GAPS[gap_name]
    robot = EmulatedA1(CONTRACT, gap)
    sensors, _ = bench.drop_on_belly(robot, np.random.default_rng([7, trial]), StandUpConfig().postures)
    assert sensors.position[2] < 0.18, "the robot lies on its belly before the stand-up"
    result = bench.run_trial(robot, sensors, bench.standing_height(CONTRACT, gap))
    assert result.success, result
    assert result.time_to_stand_s <= bench.StandCriteria().deadline_s
    assert result.targets_within_limits and result.max_target_step_rad <= StandUpConfig().max_delta_per_tick + 1e-9


def test_robot_dropped_on_its_back_is_refused_in_the_emulator():
    robot = EmulatedA1(CONTRACT, DynamicsGap())
    sensors = bench.drop(robot, np.random.default_rng(5), roll=math.pi)
    gravity = bench.projected_gravity(sensors)
    assert classify_posture(gravity, float(sensors.position[2])) is Posture.BACK
    decision = StandUpController(CONTRACT).start(0.0, sensors.joint_pos, gravity)
    assert decision.targets is None and "on its back" in decision.refused
