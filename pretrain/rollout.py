"""Run a bundle's policy in the embedded simulator: the walk check, and action collection.

The walk check is the acceptance test of a policy: ``num_envs`` robots get a fixed forward command
(default 0.5 m/s) for ``seconds`` (default 10 s); the policy walks if no robot falls, the mean
velocity-tracking error |command_xy - body velocity_xy| is under ``max_tracking_error`` and the mean
forward speed (displacement along the initial heading / time) is within ``speed_tolerance`` of the command
(relative to ``|command|``, so backward commands work too). The grid evaluation
(``python -m pretrain evaluate``) is the full test; this is its one-command shortcut.
``python -m pretrain walk BUNDLE`` prints the numbers and exits non-zero on failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from a1_common.bundle import BundlePolicy
from a1_common.cli import ArgumentParser, run_main
from a1_contract import TaskContract


def _env_for(contract: TaskContract, num_envs: int, seed: int, randomize: bool, obs_noise: bool) -> Any:
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

    return A1MujocoVecEnv(num_envs, contract, seed=seed, num_threads=1, obs_noise=obs_noise, randomize=randomize)


def collect_actions(
    path: str | Path, steps: int, num_envs: int, *, deterministic: bool = True, seed: int = 0
) -> tuple[np.ndarray, TaskContract, dict[str, Any]]:
    """Raw actions (steps * num_envs, J) the policy takes under the training conditions of its config."""
    policy = BundlePolicy(path)
    env_cfg = policy.files.config.get("env", {})
    env = _env_for(policy.contract, num_envs, seed, env_cfg.get("randomize", True), env_cfg.get("obs_noise", True))
    obs = env.reset()
    actions = []
    for _ in range(steps):
        action = policy(obs, deterministic)
        actions.append(policy.contract.action_bounds.to_raw(action))
        obs, _, _, _ = env.step(action)
    return np.concatenate(actions), policy.contract, policy.files.meta


@dataclass
class WalkResult:
    walks: bool
    falls: int
    num_envs: int
    seconds: float
    command_x: float
    mean_tracking_error: float
    mean_forward_speed: float
    min_forward_speed: float
    mean_base_height: float

    def describe(self) -> str:
        verdict = "WALKS" if self.walks else "DOES NOT WALK"
        return (
            f"{verdict}: {self.num_envs} robots, {self.seconds:g} s at {self.command_x} m/s: falls {self.falls}, "
            f"tracking error {self.mean_tracking_error:.3f} m/s, forward speed mean {self.mean_forward_speed:.3f} "
            f"(min {self.min_forward_speed:.3f}) m/s, base height {self.mean_base_height:.3f} m"
        )


def walk_check(
    policy: Any,
    contract: TaskContract,
    *,
    command_x: float = 0.5,
    seconds: float = 10.0,
    num_envs: int = 8,
    seed: int = 0,
    randomize: bool = False,
    obs_noise: bool = False,
    max_tracking_error: float = 0.25,
    speed_tolerance: float = 0.5,
) -> WalkResult:
    """Run ``policy`` (normalized obs-to-action callable taking raw observations) with a fixed command."""
    from a1_common.task import batch_math

    if not seconds > 0 or num_envs < 1:
        raise ValueError(f"the walk check needs seconds > 0 and num_envs >= 1, got {seconds} and {num_envs}")
    env = _env_for(contract, num_envs, seed, randomize, obs_noise)
    env.reset()
    ids = np.arange(num_envs)
    env.commands.set(ids, np.tile([command_x, 0.0, 0.0], (num_envs, 1)), hold_s=seconds + 1.0)
    obs = env.observe()
    start_xy = env.qpos[:, :2].copy()
    start_yaw = batch_math.yaw(env.qpos[:, 3:7])
    fell = np.zeros(num_envs, bool)
    errors, heights = [], []
    steps = int(round(seconds / contract.policy_dt))
    for _ in range(steps):
        obs, _, dones, infos = env.step(policy(obs))
        snap = env.snapshot()
        errors.append(np.linalg.norm(env.commands.command[:, :2] - snap["lin_vel_b"][:, :2], axis=1))
        heights.append(env.base_height.copy())
        for i in np.flatnonzero(dones):
            if not infos[i].get("TimeLimit.truncated", False):
                fell[i] = True
        if fell.any():
            break
    # Displacement along each robot's initial heading (robots start at random yaw under randomization).
    distance = np.sum((env.qpos[:, :2] - start_xy) * np.stack([np.cos(start_yaw), np.sin(start_yaw)], axis=1), axis=1)
    elapsed = len(errors) * contract.policy_dt
    speeds = np.where(fell, 0.0, distance / max(elapsed, 1e-9))
    err = float(np.mean(errors))
    result = WalkResult(
        walks=bool(
            not fell.any()
            and err < max_tracking_error
            and abs(speeds.mean() - command_x) <= speed_tolerance * abs(command_x)
        ),
        falls=int(fell.sum()),
        num_envs=num_envs,
        seconds=round(elapsed, 3),
        command_x=command_x,
        mean_tracking_error=err,
        mean_forward_speed=float(speeds.mean()),
        min_forward_speed=float(speeds.min()),
        mean_base_height=float(np.mean(heights)),
    )
    env.close()
    return result


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ArgumentParser(prog=prog, description="Does a bundle's policy walk? (see module docs)", allow_abbrev=False)
    parser.add_argument("bundle", help="bundle or run directory")
    parser.add_argument("--command-x", type=float, default=0.5, help="forward command, m/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--randomize", action="store_true", help="domain randomization and pushes on")
    parser.add_argument("--obs-noise", action="store_true", help="training observation noise on")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.seconds > 0 or args.num_envs < 1:
        parser.error(f"need --seconds > 0 and --num-envs >= 1, got {args.seconds} and {args.num_envs}")
    policy = BundlePolicy(args.bundle)
    result = walk_check(
        policy,
        policy.contract,
        command_x=args.command_x,
        seconds=args.seconds,
        num_envs=args.num_envs,
        seed=args.seed,
        randomize=args.randomize,
        obs_noise=args.obs_noise,
    )
    print(json.dumps(asdict(result)) if args.json else result.describe())
    return 0 if result.walks else 1


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain walk")
