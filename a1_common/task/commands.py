"""Velocity commands with heading control, as Isaac Lab's ``UniformVelocityCommand``, batched in numpy."""

from __future__ import annotations

import numpy as np

from a1_common.task.batch_math import wrap_to_pi
from a1_contract import CommandRanges


class VelocityCommands:
    """Per-env (v_x, v_y, w_z) body-frame commands, resampled on a timer and at reset.

    At each resample v_x, v_y, w_z and a heading target are drawn uniformly; a fraction of envs use
    heading control (w_z = clip(k * wrap(heading - yaw))) and a fraction stand still (all zero).
    """

    def __init__(self, ranges: CommandRanges, num_envs: int, policy_dt: float) -> None:
        self.ranges = ranges
        self.policy_dt = policy_dt
        self.command = np.zeros((num_envs, 3))
        self.heading_target = np.zeros(num_envs)
        self.is_heading_env = np.zeros(num_envs, dtype=bool)
        self.is_standing_env = np.zeros(num_envs, dtype=bool)
        self.time_left = np.zeros(num_envs)

    def resample(self, env_ids: np.ndarray, rng: np.random.Generator) -> None:
        n = len(env_ids)
        if n == 0:
            return
        r = self.ranges
        self.time_left[env_ids] = rng.uniform(*r.resampling_time_range, size=n)
        self.command[env_ids, 0] = rng.uniform(*r.lin_vel_x, size=n)
        self.command[env_ids, 1] = rng.uniform(*r.lin_vel_y, size=n)
        self.command[env_ids, 2] = rng.uniform(*r.ang_vel_z, size=n)
        self.heading_target[env_ids] = rng.uniform(*r.heading, size=n)
        self.is_heading_env[env_ids] = r.heading_command & (rng.uniform(size=n) <= r.rel_heading_envs)
        self.is_standing_env[env_ids] = rng.uniform(size=n) <= r.rel_standing_envs

    def step(self, base_yaw: np.ndarray, rng: np.random.Generator) -> None:
        """Advance the resampling timers by one policy step, then apply heading control and standing."""
        self.time_left -= self.policy_dt
        self.resample(np.flatnonzero(self.time_left <= 0.0), rng)
        self.update(base_yaw)

    def update(self, base_yaw: np.ndarray) -> None:
        heading = self.is_heading_env
        if heading.any():
            error = wrap_to_pi(self.heading_target[heading] - base_yaw[heading])
            self.command[heading, 2] = np.clip(self.ranges.heading_control_stiffness * error, *self.ranges.ang_vel_z)
        self.command[self.is_standing_env] = 0.0

    def set(self, env_ids: np.ndarray, command: np.ndarray, hold_s: float = np.inf) -> None:
        """Fix the command of some envs (no heading control, no standing) for ``hold_s`` seconds."""
        self.command[env_ids] = command
        self.time_left[env_ids] = hold_s
        self.is_heading_env[env_ids] = False
        self.is_standing_env[env_ids] = False
