"""Stand-up success from random belly-down falls in the emulated A1 (:mod:`robot_bridge.standup`).

Usage (from the repo root)::

    python benchmarks/standup.py [--n 20] [--seed 0]

Each trial drops :class:`robot_bridge.emulator.EmulatedA1` from a random pose (yaw in [-pi, pi], roll and pitch
within +-0.3 rad, joint angles uniform within the joint limits, trunk 0.25-0.35 m up, still) and lets it settle
for 1 s under the damping command (target = measured pose, what the safety layer sends after a fall) so it lies
like a fallen robot. A drop that ends anywhere but right side up on its belly is redrawn and counted
(``redrawn``). Then :class:`~robot_bridge.standup.StandUpController` runs at the policy rate through the
emulator's PD (the contract's gains). A trial succeeds when, from some time <= ``deadline_s`` to the end of a
further ``observe_s``, the robot stands at every tick: trunk height within ``height_tolerance_m`` of the
standing height (measured per dynamics gap: reset at the default pose, 2 s), tilt < ``max_tilt_rad``, every
joint within ``joint_tolerance_rad`` of the default pose, all four feet loaded, no trunk contact. That time is
the time to stand. Rows: the nominal dynamics and ``DynamicsGap(mass_scale=1.1, motor_strength=0.9)``. A robot
dropped on its back must be refused.

Progress on stderr; the last stdout line is one JSON object::

    {"metric": "standup_success", "value": <share, nominal>, "target": 0.95, "n": 20, "median_s": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass

import mujoco
import numpy as np

from a1_contract import TaskContract, get_contract
from robot_bridge.emulator import DynamicsGap, EmulatedA1, Sensors
from robot_bridge.observation import projected_gravity_from_xyzw
from robot_bridge.standup import (
    Posture,
    PostureThresholds,
    StandUpConfig,
    StandUpController,
    classify_posture,
    tilt_rad,
)

GAPS: dict[str, DynamicsGap] = {
    "nominal": DynamicsGap(),
    "mass1.1_motor0.9": DynamicsGap(mass_scale=1.1, motor_strength=0.9),
}


@dataclass(frozen=True)
class StandCriteria:
    """What counts as standing, and by when."""

    deadline_s: float = 3.0
    """The robot must stand from this time after the start at the latest (s)."""
    observe_s: float = 0.5
    """...and keep standing for this long after the deadline (s)."""
    height_tolerance_m: float = 0.04
    """Largest |trunk height - standing height| (m)."""
    max_tilt_rad: float = 0.2
    """Largest trunk tilt (rad)."""
    joint_tolerance_rad: float = 0.35
    """Largest |joint - default pose| (rad); the contract's soft PD alone leaves ~0.2 rad at the calves."""
    min_foot_force_n: float = 1.0
    """Smallest normal force on each foot (N)."""


@dataclass(frozen=True)
class TrialResult:
    success: bool
    time_to_stand_s: float | None
    """First time from which the robot stood until the end of the trial, or ``None``."""
    reason: str
    """Why it failed ('' on success)."""
    start_tilt_rad: float
    max_tilt_rad: float
    max_target_step_rad: float
    """Largest change of any joint target between ticks (the first from the measured pose inside the limits)."""
    targets_within_limits: bool
    """Every target inside the contract's joint limits."""
    max_effort_nm: float
    """Largest |joint torque| of the PD during the trial (N*m; the contract's effort limit caps it)."""


def projected_gravity(sensors: Sensors) -> np.ndarray:
    w, x, y, z = sensors.orientation_wxyz
    return projected_gravity_from_xyzw((x, y, z, w))


def standing_height(contract: TaskContract, gap: DynamicsGap) -> float:
    """Trunk height of the robot holding the default pose for 2 s (m)."""
    robot = EmulatedA1(contract, gap)
    robot.step(int(round(2.0 / contract.sim_dt)))
    return float(robot.sense().position[2])


def _quat_zyx(yaw: float, pitch: float, roll: float) -> np.ndarray:
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    for axis, angle in ((2, yaw), (1, pitch), (0, roll)):
        turn, out = np.zeros(4), np.zeros(4)
        mujoco.mju_axisAngle2Quat(turn, np.eye(3)[axis], angle)
        mujoco.mju_mulQuat(out, quat, turn)
        quat = out
    return quat


def drop(robot: EmulatedA1, rng: np.random.Generator, roll: float | None = None, settle_s: float = 1.0) -> Sensors:
    """Drop the robot from a random pose and let it settle under the damping command; returns the sensors.

    ``roll`` overrides the random small roll (pass ``math.pi`` to drop it on its back).
    """
    contract = robot.contract
    limits = np.asarray(contract.joint_pos_limits)
    joints = rng.uniform(limits[:, 0], limits[:, 1])
    yaw, pitch, small_roll = rng.uniform(-math.pi, math.pi), *rng.uniform(-0.3, 0.3, 2)
    # reset(), not mj_resetData alone: it also drops the targets still queued for the old clock (an emulator node
    # queues them between its physics steps), which would otherwise wait until the reset clock reaches their time.
    robot.reset()
    robot.data.qpos[0:3] = (0.0, 0.0, rng.uniform(0.25, 0.35))
    robot.data.qpos[3:7] = _quat_zyx(yaw, pitch, small_roll if roll is None else roll)
    robot.data.qpos[robot.info.qpos_joints] = joints
    robot.data.ctrl[: contract.num_joints] = joints
    mujoco.mj_forward(robot.model, robot.data)
    sensors = robot.sense()
    for _ in range(int(round(settle_s / contract.policy_dt))):
        robot.set_targets(sensors.joint_pos)
        robot.step(contract.decimation)
        sensors = robot.sense()
    return sensors


def drop_on_belly(
    robot: EmulatedA1, rng: np.random.Generator, thresholds: PostureThresholds | None = None, max_draws: int = 50
) -> tuple[Sensors, list[str]]:
    """:func:`drop` until the robot lies right side up on its belly; returns the sensors and the redrawn postures."""
    redrawn = []
    for _ in range(max_draws):
        sensors = drop(robot, rng)
        posture = classify_posture(projected_gravity(sensors), float(sensors.position[2]), thresholds)
        if posture is Posture.BELLY:
            return sensors, redrawn
        redrawn.append(posture.value)
    raise RuntimeError(f"no belly-down drop in {max_draws} draws (got {redrawn})")


def run_trial(
    robot: EmulatedA1,
    sensors: Sensors,
    height: float,
    config: StandUpConfig | None = None,
    criteria: StandCriteria | None = None,
) -> TrialResult:
    """Run the controller from the robot's current state at the policy rate; see the module docs."""
    contract, crit = robot.contract, criteria or StandCriteria()
    controller = StandUpController(contract, config)
    default = np.asarray(contract.default_joint_pos)
    limits = np.asarray(contract.joint_pos_limits)
    t0, gravity = robot.time, projected_gravity(sensors)
    start_tilt = tilt_rad(gravity)
    decision = controller.start(0.0, sensors.joint_pos, gravity)
    previous = np.clip(sensors.joint_pos, limits[:, 0], limits[:, 1])  # a joint can sit past its limit
    max_step, within, max_tilt, max_effort = 0.0, True, start_tilt, 0.0
    stood_since, failing = None, "never stood"
    ticks = int(round((crit.deadline_s + crit.observe_s) / contract.policy_dt))
    for _ in range(ticks):
        if decision.targets is not None:
            max_step = max(max_step, float(np.abs(decision.targets - previous).max()))
            within &= bool(((decision.targets >= limits[:, 0]) & (decision.targets <= limits[:, 1])).all())
            previous = decision.targets
        robot.set_targets(decision.targets if decision.targets is not None else sensors.joint_pos)
        robot.step(contract.decimation)
        sensors, now = robot.sense(), robot.time - t0
        gravity = projected_gravity(sensors)
        tilt = tilt_rad(gravity)
        max_tilt = max(max_tilt, tilt)
        max_effort = max(max_effort, float(np.abs(sensors.joint_effort).max()))
        misses = {
            "height": abs(sensors.position[2] - height) > crit.height_tolerance_m,
            "tilt": tilt >= crit.max_tilt_rad,
            "joints": np.abs(sensors.joint_pos - default).max() > crit.joint_tolerance_rad,
            "feet": sensors.foot_forces.min() < crit.min_foot_force_n,
            "trunk_contact": sensors.trunk_contact,
        }
        failed = [name for name, miss in misses.items() if miss]
        if failed:
            stood_since, failing = None, f"not standing at {now:.2f} s: {', '.join(failed)}"
        elif stood_since is None:
            stood_since = now
        decision = controller.step(now, sensors.joint_pos, gravity)
    success = decision.refused is None and stood_since is not None and stood_since <= crit.deadline_s + 1e-9
    if decision.refused is not None:
        reason = f"refused: {decision.refused}"
    elif stood_since is not None and not success:
        reason = f"stood only from {stood_since:.2f} s"
    else:
        reason = "" if success else failing
    stood = stood_since if success else None
    return TrialResult(success, stood, reason, start_tilt, max_tilt, max_step, within, max_effort)


def benchmark_gap(contract: TaskContract, gap: DynamicsGap, n: int, seed: int, config: StandUpConfig) -> dict:
    robot, height = EmulatedA1(contract, gap), standing_height(contract, gap)
    results, redrawn = [], []
    for trial in range(n):
        sensors, again = drop_on_belly(robot, np.random.default_rng([seed, trial]), config.postures)
        redrawn += again
        result = run_trial(robot, sensors, height, config)
        results.append(result)
        status = f"stood in {result.time_to_stand_s:.2f} s" if result.success else result.reason
        print(f"  trial {trial}: start tilt {math.degrees(result.start_tilt_rad):.0f} deg, {status}", file=sys.stderr)
    times = [r.time_to_stand_s for r in results if r.success]
    return {
        "success": sum(r.success for r in results) / n,
        "median_s": round(float(np.median(times)), 3) if times else None,
        "max_s": round(max(times), 3) if times else None,
        "standing_height_m": round(height, 4),
        "max_target_step_rad": round(max(r.max_target_step_rad for r in results), 6),
        "max_tilt_rad": round(max(r.max_tilt_rad for r in results), 3),
        "max_effort_nm": round(max(r.max_effort_nm for r in results), 2),
        "targets_within_limits": all(r.targets_within_limits for r in results),
        "redrawn": {p: redrawn.count(p) for p in sorted(set(redrawn))},
        "failures": [r.reason for r in results if not r.success],
    }


def back_is_refused(contract: TaskContract, seed: int) -> str | None:
    """Drop the robot on its back; the controller's refusal reason (``None`` if it did not refuse)."""
    robot = EmulatedA1(contract)
    sensors = drop(robot, np.random.default_rng([seed, 999]), roll=math.pi)
    decision = StandUpController(contract).start(0.0, sensors.joint_pos, projected_gravity(sensors))
    return decision.refused if decision.targets is None else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="trials per dynamics gap")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}")
    contract, config, started = get_contract(), StandUpConfig(), time.perf_counter()
    rows = {}
    for name, gap in GAPS.items():
        print(f"{name}: {asdict(gap)}", file=sys.stderr)
        rows[name] = benchmark_gap(contract, gap, args.n, args.seed, config)
        print(f"{name}: success {rows[name]['success']:.2f}, median {rows[name]['median_s']} s", file=sys.stderr)
    back = back_is_refused(contract, args.seed)
    print(f"on its back: {back!r}", file=sys.stderr)
    nominal = rows["nominal"]
    line = {
        "metric": "standup_success",
        "value": nominal["success"],
        "target": 0.95,
        "n": args.n,
        "median_s": nominal["median_s"],
        "max_s": nominal["max_s"],
        "deadline_s": StandCriteria().deadline_s,
        "gap_success": rows["mass1.1_motor0.9"]["success"],
        "back_refused": back is not None,
        "rows": rows,
        "config": asdict(config),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
