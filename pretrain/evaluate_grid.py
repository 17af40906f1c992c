"""The velocity-command grid evaluation: every command on several robots in one vector env, per condition.

A condition names the simulator settings (``nominal``: nominal dynamics, no observation noise; ``training``: the
contract's domain randomization and training noise; ``latency``: training conditions with the joint targets one
policy step late). Per grid point: mean linear and yaw-rate tracking errors after the settle time, mean speed
along the command in the world frame, falls, the 20 s return and the fraction of saturated actions; the walking
goals (:class:`Goals`) are checked per point. ``python -m pretrain evaluate`` (:mod:`pretrain.evaluate`) runs it on a
bundle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from a1_contract import TaskContract

# One non-zero component at a time (vx, vy, wz); the grid of the walking goals, plus slow forward and standing.
DEFAULT_GRID: tuple[tuple[float, float, float], ...] = (
    (-1.0, 0.0, 0.0),
    (-0.5, 0.0, 0.0),
    (0.25, 0.0, 0.0),
    (0.5, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, -0.5, 0.0),
    (0.0, 0.5, 0.0),
    (0.0, 0.0, -1.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.0, 0.0),
)
CONDITIONS: dict[str, dict[str, float]] = {
    "nominal": {"randomize": False, "obs_noise": False},
    "training": {"randomize": True, "obs_noise": True},
    # Training conditions with the joint targets acting one policy step late: a loaded robot computer.
    "latency": {"randomize": True, "obs_noise": True, "action_latency_s": 0.02},
}
DEFAULT_CONDITIONS = ("nominal", "training")
"""What ``--conditions both`` (the default) evaluates; ``all`` adds ``latency``."""


def condition_env_kwargs(condition: str, contract: TaskContract) -> dict[str, Any]:
    """The simulator's keyword arguments for a named condition."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    kwargs = dict(CONDITIONS[condition])
    latency = kwargs.pop("action_latency_s", 0.0)
    kwargs["action_delay_substeps"] = int(round(latency / contract.sim_dt))
    return kwargs


@dataclass(frozen=True)
class Goals:
    """The walking goals a reference policy must meet on the grid (every command, one condition)."""

    lin_error: float = 0.15
    """Max mean linear tracking error (m/s) at every command ..."""
    lin_error_fast: float = 0.2
    """... except at |vx| >= 1 m/s."""
    yaw_error: float = 0.2
    """Max mean yaw-rate error (rad/s)."""
    forward_0_5: tuple[float, float] = (0.45, 0.55)
    """Mean forward speed (world, along the command) at vx = 0.5 m/s."""
    return_20s: float = 30.0
    """Min mean return over the 20 s episode, averaged over the grid."""


@dataclass
class PointResult:
    command: list[float]
    robots: int
    lin_error: float
    yaw_error: float
    speed_along: float
    """m/s along the commanded direction (world frame); for a pure turn, the world yaw rate (rad/s)."""
    lateral_speed: float
    """m/s perpendicular to the commanded direction (world frame; for a turn or standing: |drift| speed)."""
    falls: int
    return_20s: float
    saturated: float
    """Fraction of normalized action entries with |a| > 0.95 (a squashed policy stuck at its bounds)."""
    meets: bool = True


@dataclass
class ConditionResult:
    condition: str
    seconds: float
    settle_s: float
    points: list[PointResult] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        moving = [p for p in self.points if any(p.command)]
        fwd = [p for p in self.points if p.command == [0.5, 0.0, 0.0]]
        return {
            "grid_tracking_error_max": max(p.lin_error for p in self.points),
            "yaw_error_max": max(p.yaw_error for p in self.points),
            "falls": sum(p.falls for p in self.points),
            "return_20s": float(np.mean([p.return_20s for p in (moving or self.points)])),
            "forward_0_5_speed": fwd[0].speed_along if fwd else None,
            "saturated": float(np.mean([p.saturated for p in self.points])),
            "meets_goals": all(p.meets for p in self.points),
        }


def _goal_check(point: PointResult, goals: Goals) -> bool:
    vx, vy, wz = point.command
    if point.falls:
        return False
    lin_max = goals.lin_error_fast if abs(vx) >= 1.0 - 1e-9 else goals.lin_error
    ok = point.lin_error <= lin_max and point.yaw_error <= goals.yaw_error
    if math.isclose(vx, 0.5) and vy == 0.0 and wz == 0.0:
        ok = ok and goals.forward_0_5[0] <= point.speed_along <= goals.forward_0_5[1]
    return ok


def evaluate_condition(
    policy: Any,
    contract: TaskContract,
    grid: list[tuple[float, float, float]],
    *,
    condition: str,
    robots_per_command: int = 4,
    seconds: float = 20.0,
    settle_s: float = 2.0,
    seed: int = 0,
    goals: Goals | None = None,
) -> ConditionResult:
    """Run every grid command on ``robots_per_command`` robots for ``seconds``; ``policy``: raw obs -> action."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
    from a1_common.task import batch_math

    env_kwargs = condition_env_kwargs(condition, contract)
    if not seconds > settle_s >= 0.0:
        raise ValueError(f"need seconds > settle_s >= 0, got seconds={seconds}, settle_s={settle_s}")
    if robots_per_command < 1 or not grid:
        raise ValueError("need at least one command and one robot per command")
    goals = goals or Goals()
    k = robots_per_command
    commands = np.repeat(np.asarray(grid, dtype=np.float64), k, axis=0)
    n = len(commands)
    env = A1MujocoVecEnv(n, contract, seed=seed, num_threads=1, **env_kwargs)
    try:
        env.reset()
        ids = np.arange(n)
        env.commands.set(ids, commands)
        obs = env.observe()
        steps = int(round(seconds / contract.policy_dt))
        settle = int(round(settle_s / contract.policy_dt))
        lin_err, yaw_err = np.zeros(n), np.zeros(n)
        measured = np.zeros(n)
        returns, falls = np.zeros(n), np.zeros(n, dtype=np.int64)
        saturated = np.zeros(n)
        start_xy, start_yaw = env.qpos[:, :2].copy(), batch_math.yaw(env.qpos[:, 3:7])
        yaw_travel = np.zeros(n)
        displacement = np.zeros((n, 2))
        prev_xy, prev_yaw = start_xy.copy(), start_yaw.copy()
        for t in range(steps):
            action = np.asarray(policy(obs))
            obs, rewards, dones, infos = env.step(action)
            returns += rewards
            snap = env.snapshot()
            xy, yaw = env.qpos[:, :2].copy(), batch_math.yaw(snap["quat"])
            done_ids = np.flatnonzero(dones)
            fell = [i for i in done_ids if not infos[i].get("TimeLimit.truncated", False)]
            falls[fell] += 1
            alive = np.ones(n, bool)
            alive[done_ids] = False  # a reset robot's displacement this step is a teleport, not motion
            if t >= settle:
                # Tracking of the step that just ended: reset rows hold the new episode's state, so skip them.
                lin = np.linalg.norm(commands[:, :2] - snap["lin_vel_b"][:, :2], axis=1)
                yaw_rate = snap["ang_vel_b"][:, 2]
                lin_err[alive] += lin[alive]
                yaw_err[alive] += np.abs(commands[alive, 2] - yaw_rate[alive])
                measured[alive] += 1
                saturated[alive] += np.mean(np.abs(action[alive]) > 0.95, axis=1)
                displacement[alive] += (xy - prev_xy)[alive]
                yaw_travel[alive] += batch_math.wrap_to_pi(yaw - prev_yaw)[alive]
            if t == settle - 1:
                start_yaw = yaw.copy()
            prev_xy, prev_yaw = xy, yaw
            if len(done_ids):  # a reset resamples the command: give the robot its grid command back
                env.commands.set(done_ids, commands[done_ids])
                obs[done_ids] = env.observe()[done_ids]
        window = np.maximum(measured, 1) * contract.policy_dt
        result = ConditionResult(condition, round(steps * contract.policy_dt, 6), settle_s)
        for g, cmd in enumerate(grid):
            rows = slice(g * k, (g + 1) * k)
            lin_cmd = np.asarray(cmd[:2])
            vel_w = displacement[rows] / window[rows, None]
            if np.linalg.norm(lin_cmd) > 0:
                # The commanded direction in the world, from each robot's heading when measuring started.
                direction_b = lin_cmd / np.linalg.norm(lin_cmd)
                c, s = np.cos(start_yaw[rows]), np.sin(start_yaw[rows])
                dx, dy = direction_b
                direction_w = np.stack([c * dx - s * dy, s * dx + c * dy], axis=1)
                along = np.sum(vel_w * direction_w, axis=1)
                lateral = np.abs(vel_w[:, 0] * direction_w[:, 1] - vel_w[:, 1] * direction_w[:, 0])
            else:
                along = yaw_travel[rows] / window[rows]
                lateral = np.linalg.norm(vel_w, axis=1)
            point = PointResult(
                command=[float(v) for v in cmd],
                robots=k,
                lin_error=float(np.mean(lin_err[rows] / np.maximum(measured[rows], 1))),
                yaw_error=float(np.mean(yaw_err[rows] / np.maximum(measured[rows], 1))),
                speed_along=float(np.mean(along)),
                lateral_speed=float(np.mean(lateral)),
                falls=int(falls[rows].sum()),
                return_20s=float(np.mean(returns[rows]) * 20.0 / max(seconds, 1e-9)),
                saturated=float(np.mean(saturated[rows] / np.maximum(measured[rows], 1))),
            )
            point.meets = _goal_check(point, goals)
            result.points.append(point)
        return result
    finally:
        env.close()
