"""Body-velocity estimator accuracy: the reference policy walks in the emulated A1 on the estimated velocity.

Usage (from the repo root)::

    python benchmarks/estimator_accuracy.py [--seconds 8] [--sensor-noise 1] [--quick]

In-process, without ROS (deterministic, faster than real time): :class:`robot_bridge.emulator.EmulatedA1`
(sensor noise ``--sensor-noise`` times the training noise, no other gap) is stepped at ``sim_dt``; every physics
step its ``sense()`` feeds :class:`robot_bridge.estimator.BodyVelocityEstimator` (IMU, foot forces, joints), and
every ``decimation`` steps the committed reference policy (``a1_common.bundle.BundlePolicy``) gets the
observation as the bridge builds it (``robot_bridge.observation.ObservationAssembler``). The robot stands at the
default pose for ``SETTLE_S`` first, then each command runs for ``--seconds``.

Two loops per command: ``closed`` feeds the policy the ESTIMATED ``base_lin_vel`` (what the robot will do) and
``open`` feeds it the emulator's ground truth (with its sensor noise, as the ``odom`` topic carries it). The
error is always against the noise-free ground truth (the simulator's ``base_lin_vel``: trunk COM velocity in the
trunk frame), over the walking window. Progress goes to stderr; the last stdout line is one JSON object::

    {"metric": "velocity_rmse_m_s", "value": <closed-loop RMSE of (vx, vy) over all commands>, "target": 0.1,
     "rmse_vx": ..., "rmse_vy": ..., "fell": [...], "open_loop": {...}, "per_command": {...}, ...}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

COMMANDS: dict[str, tuple[float, float, float]] = {
    "forward_0.5": (0.5, 0.0, 0.0),
    "lateral_0.3": (0.0, 0.3, 0.0),
    "turn_0.8": (0.0, 0.0, 0.8),
    "forward_0.3_turn_0.5": (0.3, 0.0, 0.5),
}
"""Velocity commands (vx m/s, vy m/s, yaw rate rad/s) walked per run."""
SETTLE_S = 0.5
"""Seconds standing at the default pose (targets = default) before the policy takes over."""
FALL_HEIGHT = 0.15
"""Trunk height (m) under which the run counts as a fall even without trunk contact."""


@dataclass
class WalkTrace:
    """Per physics step over the walking window: estimate and noise-free ground truth."""

    estimated: np.ndarray
    """(T, 3) estimated body velocity (m/s)."""
    truth: np.ndarray
    """(T, 3) ground-truth body velocity (m/s)."""
    estimated_height: np.ndarray
    """(T,) estimated trunk height (m)."""
    true_height: np.ndarray
    """(T,) ground-truth trunk height (m)."""
    fell: bool
    counters: dict[str, int]

    def rmse(self) -> tuple[float, float]:
        """RMSE of vx and vy (m/s)."""
        error = self.estimated[:, :2] - self.truth[:, :2]
        return tuple(float(v) for v in np.sqrt(np.mean(error**2, axis=0)))


def walk(
    policy,
    command: tuple[float, float, float],
    seconds: float,
    *,
    closed_loop: bool = True,
    sensor_noise: float = 1.0,
    seed: int = 0,
    estimator_config=None,
) -> WalkTrace:
    """One episode: settle, then ``policy`` (a ``BundlePolicy``) walks ``command`` for ``seconds``."""
    from a1_common.task.observations import body_state
    from robot_bridge.emulator import DynamicsGap, EmulatedA1
    from robot_bridge.estimator import BodyVelocityEstimator
    from robot_bridge.observation import ObservationAssembler, projected_gravity_from_xyzw

    contract = policy.contract
    emulator = EmulatedA1(contract, DynamicsGap(sensor_noise=sensor_noise, seed=seed))
    estimator = BodyVelocityEstimator(contract.joint_names, estimator_config)
    assembler = ObservationAssembler(contract)
    trunk_com = emulator.model.body_ipos[emulator.info.trunk_body][None]
    settle_steps = int(round(SETTLE_S / contract.sim_dt))
    total_steps = settle_steps + int(round(seconds / contract.sim_dt))
    last_action = np.zeros(contract.num_joints)
    rows, fell = [], False
    for step in range(total_steps):
        s = emulator.sense()
        quat_xyzw = np.roll(s.orientation_wxyz, -1)
        estimator.update_imu(s.time, quat_xyzw, s.angular_velocity, s.linear_acceleration)
        estimator.update_contacts(s.time, s.foot_forces)
        estimator.update_joints(s.time, s.joint_pos, s.joint_vel)
        estimate = estimator.estimate()
        if step >= settle_steps:
            truth = body_state(emulator.data.qpos[None], emulator.data.qvel[None], trunk_com, emulator.info)
            rows.append((*estimate.velocity, *truth["lin_vel_b"][0], estimate.height, s.position[2]))
            if s.trunk_contact or s.position[2] < FALL_HEIGHT:
                fell = True
                break
            if (step - settle_steps) % contract.decimation == 0:
                obs = assembler.build(
                    joint_pos=s.joint_pos,
                    joint_vel=s.joint_vel,
                    projected_gravity=projected_gravity_from_xyzw(quat_xyzw),
                    base_ang_vel=s.angular_velocity,
                    command=command,
                    last_action=last_action,
                    base_lin_vel=estimate.velocity if closed_loop else s.linear_velocity,
                )
                last_action = contract.action_bounds.to_raw(policy(obs[None])[0])
                emulator.set_targets(contract.raw_joint_targets(last_action))
        emulator.step(1)
    data = np.array(rows).reshape(-1, 8)
    return WalkTrace(data[:, 0:3], data[:, 3:6], data[:, 6], data[:, 7], fell, dict(estimator.counters))


def _summary(traces: dict[str, WalkTrace]) -> dict:
    per_command = {}
    for name, trace in traces.items():
        rmse_vx, rmse_vy = trace.rmse()
        per_command[name] = {
            "rmse_vx": round(rmse_vx, 4),
            "rmse_vy": round(rmse_vy, 4),
            "mean_vx": round(float(trace.truth[:, 0].mean()), 3),
            "mean_vy": round(float(trace.truth[:, 1].mean()), 3),
            "height_rmse": round(float(np.sqrt(np.mean((trace.estimated_height - trace.true_height) ** 2))), 4),
            "fell": trace.fell,
            "counters": trace.counters,
        }
    error = np.concatenate([t.estimated[:, :2] - t.truth[:, :2] for t in traces.values()])
    rmse_vx, rmse_vy = np.sqrt(np.mean(error**2, axis=0))
    return {
        "rmse": round(float(np.sqrt(np.mean(error**2))), 4),
        "rmse_vx": round(float(rmse_vx), 4),
        "rmse_vy": round(float(rmse_vy), 4),
        "fell": [name for name, t in traces.items() if t.fell],
        "per_command": per_command,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="walking seconds per command")
    parser.add_argument("--sensor-noise", type=float, default=1.0, help="emulator sensor noise (x training noise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 s per command (smoke test)")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds

    from a1_common.bundle import BundlePolicy
    from pretrain.reference import REFERENCE_BUNDLE

    start = time.perf_counter()
    policy = BundlePolicy(REFERENCE_BUNDLE)
    results = {}
    for loop in ("closed", "open"):
        traces = {}
        for name, command in COMMANDS.items():
            traces[name] = walk(
                policy, command, seconds, closed_loop=loop == "closed", sensor_noise=args.sensor_noise, seed=args.seed
            )
            rmse_vx, rmse_vy = traces[name].rmse()
            print(f"{loop:6s} {name:22s} rmse vx {rmse_vx:.3f} vy {rmse_vy:.3f} m/s  mean vx "
                  f"{traces[name].truth[:, 0].mean():+.2f} vy {traces[name].truth[:, 1].mean():+.2f}  "
                  f"fell {traces[name].fell}", file=sys.stderr)  # fmt: skip
        results[loop] = _summary(traces)
    closed = results["closed"]
    report = {
        "metric": "velocity_rmse_m_s",
        "value": closed["rmse"],
        "target": 0.1,
        "rmse_vx": closed["rmse_vx"],
        "rmse_vy": closed["rmse_vy"],
        "fell": closed["fell"],
        "per_command": closed["per_command"],
        "open_loop": results["open"],
        "seconds_per_command": seconds,
        "sensor_noise": args.sensor_noise,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
