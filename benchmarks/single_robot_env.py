"""One A1 robot per ``gymnasium.Env``: the "one env object per robot" baseline for the throughput benchmark.

Same task as :class:`a1_common.sim.mujoco_vec_env.A1MujocoVecEnv` with ``num_envs=1``, but stepped the
classic way: ``mujoco.mj_step`` called ``decimation`` times from Python per env step, then the
observation, reward and termination of this one robot computed with the project's batched helpers
at batch size 1 (``a1_common.task.batch_math``, ``a1_common.task.rewards``, ``a1_common.task.commands``).
Nothing is skipped: observation noise, per-term reward sums, foot air-time tracking every physics
step, trunk-contact termination, time-limit truncation, reset randomization and pushes are all done,
so a ``gymnasium.vector.SyncVectorEnv`` of N of these does the batched env's work, one robot at a time.

``tests/benchmarks/test_single_robot_env.py`` checks that its observation and reward equal the
batched env's for the same state and action, which is what keeps the baseline honest.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from a1_common.sim.a1_model import A1ModelInfo, build_a1_model, default_qpos
from a1_common.task import batch_math
from a1_common.task.commands import VelocityCommands
from a1_common.task.observations import ObservationBuilder, body_state
from a1_common.task.rewards import FootContactTracker, state_reward_terms, weighted_sum
from a1_contract import TaskContract, get_contract

# Same divergence guard as the batched env.
_MAX_ABS_QVEL = 1.0e3
_ENV0 = np.array([0])


class A1SingleRobotEnv(gym.Env):
    """The contract's A1 flat velocity task for one robot, stepped with ``mujoco.mj_step``.

    Args:
        contract: the task contract (default: ``get_contract()``).
        model: the compiled model to simulate (default: ``build_a1_model(contract)``); pass one of
            ``A1MujocoVecEnv.models`` to run exactly the batched env's (startup-randomized) robot.
        obs_noise: add the contract's training observation noise.
        randomize: reset spread and pushes as the batched env (startup randomization of mass, COM
            and friction lives in ``model``).
        seed: seeds the episode stream (resets, commands, noise, pushes); ``reset(seed=...)`` re-seeds.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        contract: TaskContract | None = None,
        *,
        model: mujoco.MjModel | None = None,
        obs_noise: bool = True,
        randomize: bool = True,
        seed: int | None = None,
    ) -> None:
        c = self.contract = contract if contract is not None else get_contract()
        self.model = model if model is not None else build_a1_model(c)
        self.data = mujoco.MjData(self.model)
        self.info = A1ModelInfo.of(self.model, c)
        self.obs_noise = obs_noise
        self.randomize = randomize
        self.observation_space = spaces.Box(-np.inf, np.inf, (c.obs_dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (c.num_joints,), np.float32)
        self._rng = np.random.default_rng(seed)

        self._default_qpos = default_qpos(self.model, c, self.info)
        self._default = np.asarray(c.default_joint_pos)
        self._soft_limits = c.soft_joint_pos_limits()
        self._trunk_com = self.model.body_ipos[self.info.trunk_body][None, :].copy()
        self._obs_builder = ObservationBuilder(c)

        self.commands = VelocityCommands(c.commands, 1, c.policy_dt)
        self.feet = FootContactTracker(1, 4, c.sim_dt, c.reward_params["contact_force_threshold"])
        self.action_raw = np.zeros((1, c.num_joints))
        self.prev_action_raw = np.zeros((1, c.num_joints))
        self.episode_length = 0
        self.episode_return = 0.0
        self.episode_terms = {k: 0.0 for k, w in c.rewards.items() if w != 0.0}
        self.push_time_left = np.inf
        self.last_reward_terms: dict[str, np.ndarray] = {}
        # Per physics step of one env step: foot and trunk touch forces.
        self._foot_force = np.zeros((1, c.decimation, 4))
        self._trunk_force = np.zeros(c.decimation)
        self._reset_state()

    # ---- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_state()
        self.commands.update(batch_math.yaw(self.data.qpos[None, 3:7]))
        return self._observe(self._snapshot()), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        c, m, d, info = self.contract, self.model, self.data, self.info
        a = np.asarray(action, dtype=np.float64).reshape(1, c.num_joints)
        if not np.isfinite(a).all():
            raise ValueError("action contains NaN or inf; refusing to step the simulator")
        a = np.clip(a, -1.0, 1.0)
        self.prev_action_raw, self.action_raw = self.action_raw, c.action_bounds.to_raw(a)
        d.ctrl[: c.num_joints] = c.clamp_joint_targets(c.raw_joint_targets(self.action_raw)[0])

        # The batched env's rollout starts every policy step from a zero warmstart; do the same so
        # both run the same solver iterations on the same states.
        d.qacc_warmstart[:] = 0.0
        qvel_prev = None
        for k in range(c.decimation):
            if k == c.decimation - 1 and k > 0:
                qvel_prev = d.qvel[info.qvel_joints].copy()
            mujoco.mj_step(m, d)
            self._foot_force[0, k] = d.sensordata[info.sensor_foot_touch]
            self._trunk_force[k] = d.sensordata[info.sensor_trunk_touch]
        diverged = self._diverged()
        self.feet.update(self._foot_force)
        self.episode_length += 1

        snap = self._snapshot()
        terminated = (
            bool(
                self._trunk_force[-c.terminations.base_contact_history :].max() > c.terminations.base_contact_threshold
            )
            or diverged
        )
        truncated = self.episode_length >= c.max_episode_steps
        joint_vel = d.qvel[info.qvel_joints][None, :]
        joint_acc = (joint_vel - qvel_prev) / c.sim_dt if qvel_prev is not None else np.zeros_like(joint_vel)
        terms = state_reward_terms(
            snap,
            self.commands.command,
            joint_acc=joint_acc,
            torques=d.sensordata[info.sensor_actuator_force][None, :],
            action_raw=self.action_raw,
            prev_action_raw=self.prev_action_raw,
            feet=self.feet,
            policy_dt=c.policy_dt,
            params=c.reward_params,
            weights=c.rewards,
        )
        reward = 0.0 if diverged else float(weighted_sum(terms, c.rewards, c.policy_dt)[0])
        self.last_reward_terms = terms
        self.episode_return += reward
        for name, value in terms.items():
            self.episode_terms[name] += c.rewards[name] * float(value[0]) * c.policy_dt

        step_info: dict[str, Any] = {}
        if terminated or truncated:
            # The vector env resets us; return the terminal observation, like the batched env's info.
            step_info["episode"] = {"r": self.episode_return, "l": self.episode_length}
            step_info["reward_terms"] = dict(self.episode_terms)
            if diverged:
                step_info["physics_diverged"] = True
            return self._observe(snap), reward, terminated, truncated, step_info
        self._apply_push()
        self.commands.step(batch_math.yaw(d.qpos[None, 3:7]), self._rng)
        return self._observe(self._snapshot()), reward, terminated, truncated, step_info

    # ---- test helper --------------------------------------------------------------------------
    def set_state(self, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None) -> None:
        """Overwrite qpos/qvel (tests), like ``A1MujocoVecEnv.set_root_state`` for one env."""
        if qpos is not None:
            self.data.qpos[:] = qpos
        if qvel is not None:
            self.data.qvel[:] = qvel

    def observe(self) -> np.ndarray:
        """(obs_dim,) observation of the current state (noise included when enabled)."""
        return self._observe(self._snapshot())

    # ---- internals ----------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, np.ndarray]:
        return body_state(self.data.qpos[None, :], self.data.qvel[None, :], self._trunk_com, self.info)

    def _observe(self, snap: dict[str, np.ndarray]) -> np.ndarray:
        rng = self._rng if self.obs_noise else None
        return self._obs_builder(snap, self.commands.command, self.action_raw, rng)[0]

    def _diverged(self) -> bool:
        d = self.data
        bad = not (np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()) or np.abs(d.qvel).max() > _MAX_ABS_QVEL
        if bad:
            # Keep the numbers finite for the terminal observation; the vector env resets us.
            np.nan_to_num(d.qpos, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            np.nan_to_num(d.qvel, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return bool(bad)

    def _reset_state(self) -> None:
        c, dr, rng = self.contract, self.contract.randomization, self._rng
        qpos = self._default_qpos.copy()
        qvel = np.zeros(self.model.nv)
        if self.randomize:
            qpos[0:2] = rng.uniform(*dr.reset_base_pos_xy, size=2)
            quat = batch_math.yaw_quat(rng.uniform(*dr.reset_base_yaw, size=1))
            qpos[3:7] = quat[0]
            qvel[0:3] = rng.uniform(*dr.reset_base_velocity, size=3)
            qvel[3:6] = batch_math.quat_rotate_inverse(quat, rng.uniform(*dr.reset_base_velocity, size=(1, 3)))[0]
            joint_pos = self._default * rng.uniform(*dr.reset_joint_pos_scale, size=c.num_joints)
            qpos[self.info.qpos_joints] = np.clip(joint_pos, self._soft_limits[:, 0], self._soft_limits[:, 1])
            interval = dr.push_interval_s
            self.push_time_left = float(rng.uniform(*interval)) if interval else np.inf
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        self.action_raw = np.zeros((1, c.num_joints))
        self.prev_action_raw = np.zeros((1, c.num_joints))
        self.episode_length = 0
        self.episode_return = 0.0
        self.episode_terms = dict.fromkeys(self.episode_terms, 0.0)
        self.feet.reset(_ENV0)
        self.commands.resample(_ENV0, rng)

    def _apply_push(self) -> None:
        interval = self.contract.randomization.push_interval_s
        if not self.randomize or interval is None:
            return
        self.push_time_left -= self.contract.policy_dt
        if self.push_time_left <= 0.0:
            self.data.qvel[0:2] += self._rng.uniform(*self.contract.randomization.push_velocity_xy, size=2)
            self.push_time_left = float(self._rng.uniform(*interval))
