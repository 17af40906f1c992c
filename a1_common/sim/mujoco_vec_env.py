"""N Unitree A1 robots on flat ground in MuJoCo, as a Stable-Baselines3 ``VecEnv``.

The physics of all N robots advances in one ``mujoco.rollout`` call per policy step (``decimation``
physics steps, C++ thread pool, GIL released); observations, rewards, terminations, commands, resets
and pushes are computed for the whole batch in numpy. Everything the task means comes from the
:class:`~a1_contract.TaskContract`; nothing here re-declares it.

Shapes (N = ``num_envs``):
  * ``step(actions)``: actions (N, 12) float in [-1, 1] (normalized; mapped to raw by the contract's
    action bounds); returns obs (N, obs_dim) float32, rewards (N,) float32, dones (N,) bool, infos.
  * On a done env, ``infos[i]`` holds ``terminal_observation`` (the last observation before the reset),
    ``TimeLimit.truncated`` (True when the episode hit the time limit and did not terminate, so SB3
    bootstraps from it), ``episode`` (``r`` return, ``l`` length, ``t`` seconds since start),
    ``reward_terms`` (per-term weighted episode sums, same units as the return) and
    ``tracking_error_xy`` (episode mean of |command_xy - body velocity_xy|, m/s: a robot that stands
    scores about the mean command speed, so return alone cannot flatter it).

Randomization at construction (the contract's "startup" events): each env has its own ``MjModel``
with its trunk mass, trunk COM and friction drawn from the contract. Seeding: the constructor seed
fixes the startup randomization and the episode stream; ``seed(s)`` re-seeds the episode stream
(resets, commands, noise, pushes) from the next ``reset()``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from mujoco import rollout
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from a1_common.sim.a1_model import A1ModelInfo, build_a1_model, default_qpos
from a1_common.sim.guards import checked_actions, fullphysics_layout, sanitize_diverged
from a1_common.sim.randomization import ResetSampler, delay_range, modified_models, startup_models
from a1_common.task import batch_math
from a1_common.task.commands import VelocityCommands
from a1_common.task.observations import ObservationBuilder, body_state
from a1_common.task.rewards import FootContactTracker, state_reward_terms, weighted_sum
from a1_contract import TaskContract, get_contract


class A1MujocoVecEnv(VecEnv):
    """The contract's A1 flat velocity task, ``num_envs`` robots stepped together.

    Args:
        num_envs: number of robots.
        contract: the task contract (default: ``get_contract()``, Isaac Lab 3.0 A1 flat).
        seed: seeds the startup randomization and the episode stream.
        num_threads: rollout threads (default: CPU count, at most ``num_envs``).
        obs_noise: add the contract's training observation noise (Isaac Lab ``enable_corruption``).
        randomize: apply the contract's domain randomization (mass, COM, friction, reset spread,
            pushes). ``False`` gives nominal dynamics, resets at the default pose and no pushes.
        modify_model: called on each env's own copy of the model after the randomization (e.g. a dynamics gap,
            :func:`robot_bridge.emulator.apply_gap`); ``mj_setConst`` follows.
        action_delay_substeps: actuation latency in physics steps (of ``sim_dt``, at most two policy steps,
            ``2 * decimation``): a policy step's joint targets take effect that many physics steps after it starts;
            until then the previous ones act. An ``int`` is the same latency for every robot; a ``(low, high)``
            pair draws each robot's latency uniformly from ``low..high`` at every reset (latency randomization:
            a policy that tolerates the robot's control loop, whose delay varies with the load on its computer).
        background: ``step_async`` starts the step (physics, rewards, resets, observations) on a worker thread
            and ``step_wait`` collects it, so the caller can work meanwhile (the learner's update: see
            :class:`a1_common.algos.concurrent.UpdateWhileStepping`). ``mujoco.rollout`` releases the GIL; the
            batch numpy work mostly does. Results are the same as stepping in the caller's thread.
    """

    def __init__(
        self,
        num_envs: int = 64,
        contract: TaskContract | None = None,
        *,
        seed: int = 0,
        num_threads: int | None = None,
        obs_noise: bool = True,
        randomize: bool = True,
        modify_model: Callable[[mujoco.MjModel], None] | None = None,
        action_delay_substeps: int | tuple[int, int] = 0,
        background: bool = False,
    ) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.contract = contract if contract is not None else get_contract()
        c = self.contract
        self.render_mode = None
        self.obs_noise = obs_noise
        self.randomize = randomize
        obs_space = spaces.Box(-np.inf, np.inf, (c.obs_dim,), np.float32)
        act_space = spaces.Box(-1.0, 1.0, (c.num_joints,), np.float32)
        super().__init__(int(num_envs), obs_space, act_space)
        n = self.num_envs

        self.model = build_a1_model(c)
        self.info = A1ModelInfo.of(self.model, c)
        self._qpos_start, self._qvel_start = fullphysics_layout(self.model, self.info.nstate)
        self._rng = np.random.default_rng(seed)
        self.models = [self.model] * n
        if randomize:
            self.models = startup_models(self.model, c, self.info.trunk_body, self._rng, n)
        if modify_model is not None:
            self.models = modified_models(self.models, modify_model)
        self.action_delay_range = delay_range(action_delay_substeps, 2 * c.decimation)
        """(low, high) actuation latency in physics steps; each robot's is drawn at its reset."""
        self.trunk_com = np.array([m.body_ipos[self.info.trunk_body] for m in self.models])
        self.num_threads = max(1, min(num_threads or os.cpu_count() or 1, n))
        self._datas = [mujoco.MjData(self.model) for _ in range(self.num_threads)]
        self._pool = rollout.Rollout(nthread=self.num_threads)

        # Per-env state (rows are envs), reused buffers for the rollout.
        self._nq, self._nv = self.model.nq, self.model.nv
        self._default_qpos = default_qpos(self.model, c, self.info)
        self.state = np.zeros((n, self.info.nstate))
        self._state_out = np.zeros((n, c.decimation, self.info.nstate))
        self._sensor_out = np.zeros((n, c.decimation, self.model.nsensordata))
        self._ctrl = np.zeros((n, c.decimation, self.model.nu))
        self._warmstart = np.zeros((n, self._nv))
        self._resets = ResetSampler(c, self._default_qpos, self.info.qpos_joints, self._nv)
        self._obs_builder = ObservationBuilder(c)

        self.commands = VelocityCommands(c.commands, n, c.policy_dt)
        self.feet = FootContactTracker(n, 4, c.sim_dt, c.reward_params["contact_force_threshold"])
        self.action_raw = np.zeros((n, c.num_joints))
        self._prev_targets = np.zeros((2, n, c.num_joints))
        """The joint targets of the last two policy steps (newest first): what acts during the latency."""
        self.action_delay = np.full(n, self.action_delay_range[0], dtype=np.int64)
        """Each robot's actuation latency (physics steps)."""
        self.prev_action_raw = np.zeros((n, c.num_joints))
        self.episode_length = np.zeros(n, dtype=np.int64)
        self.episode_return = np.zeros(n)
        self.episode_terms: dict[str, np.ndarray] = {k: np.zeros(n) for k, w in c.rewards.items() if w != 0.0}
        self.episode_tracking_error = np.zeros(n)
        """Sum over the episode of |command_xy - base velocity_xy| (m/s), divided by length at the end."""
        self.push_time_left = np.full(n, np.inf)
        self.last_reward_terms: dict[str, np.ndarray] = {}
        self.num_diverged = 0
        """Envs terminated because their physics state became non-finite or exploded."""
        self._actions: np.ndarray | None = None
        self.background = bool(background)
        self._worker: ThreadPoolExecutor | None = None
        self._pending: Future[VecEnvStepReturn] | None = None
        self._t0 = time.perf_counter()
        self._reset_envs(np.arange(n))

    # ---- state views --------------------------------------------------------------------------
    @property
    def qpos(self) -> np.ndarray:
        """(N, nq) generalized positions (view into the state)."""
        return self.state[:, self._qpos_start : self._qvel_start]

    @property
    def qvel(self) -> np.ndarray:
        """(N, nv) generalized velocities (view into the state)."""
        return self.state[:, self._qvel_start : self._qvel_start + self._nv]

    @property
    def base_height(self) -> np.ndarray:
        return self.qpos[:, 2].copy()

    def set_root_state(
        self, env_ids: Sequence[int], qpos: np.ndarray | None = None, qvel: np.ndarray | None = None
    ) -> None:
        """Overwrite full qpos/qvel rows of some envs (tests, drops, scripted pushes)."""
        ids = np.asarray(env_ids)
        if qpos is not None:
            self.state[ids, self._qpos_start : self._qvel_start] = qpos
        if qvel is not None:
            self.state[ids, self._qvel_start : self._qvel_start + self._nv] = qvel

    def snapshot(self, env_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Body-frame quantities of the current state, for all envs or the rows ``env_ids``."""
        state = self.state if env_ids is None else self.state[env_ids]
        trunk_com = self.trunk_com if env_ids is None else self.trunk_com[env_ids]
        qpos = state[:, self._qpos_start : self._qvel_start]
        qvel = state[:, self._qvel_start : self._qvel_start + self._nv]
        return body_state(qpos, qvel, trunk_com, self.info)

    def observe(self) -> np.ndarray:
        """The observation of the current state (e.g. after ``commands.set``), noise included if enabled."""
        return self._observe(self.snapshot())

    # ---- VecEnv API ---------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        self._drain()
        if self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self._reset_envs(np.arange(self.num_envs))
        self.commands.update(batch_math.yaw(self.qpos[:, 3:7]))
        return self._observe(self.snapshot())

    def step_async(self, actions: np.ndarray) -> None:
        if self._pending is not None:
            raise RuntimeError("step_async() called twice without step_wait()")
        self._actions = checked_actions(actions, self.num_envs, self.contract.num_joints)
        if self.background:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="a1_mujoco_step")
            self._pending = self._worker.submit(self._step)

    def step_wait(self) -> VecEnvStepReturn:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending.result()
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        return self._step()

    def _step(self) -> VecEnvStepReturn:
        c = self.contract
        assert self._actions is not None, "step_async() sets the actions first"
        self.prev_action_raw, self.action_raw = self.action_raw, c.action_bounds.to_raw(self._actions)
        # The contract's target rule (soft joint limits), the same clamp the robot's safety layer applies.
        targets = c.clamp_joint_targets(c.raw_joint_targets(self.action_raw))
        self._ctrl[:, :, : c.num_joints] = targets[:, None, :]  # the other actuators have no control input
        if self.action_delay_range[1]:
            # Physics step k of this policy step applies the targets of ceil((delay - k) / decimation) steps ago.
            lag = self.action_delay[:, None] - np.arange(c.decimation)[None, :]
            back = np.clip(-(-lag // c.decimation), 0, 2)
            for steps_back in (1, 2):
                rows, cols = np.nonzero(back == steps_back)
                self._ctrl[rows, cols, : c.num_joints] = self._prev_targets[steps_back - 1, rows]
            self._prev_targets[1] = self._prev_targets[0]
        self._prev_targets[0] = targets
        self._actions = None
        self._pool.rollout(
            self.models,
            self._datas,
            self.state,
            self._ctrl,
            nstep=c.decimation,
            initial_warmstart=self._warmstart,
            state=self._state_out,
            sensordata=self._sensor_out,
            skip_checks=True,
        )
        self.state[:] = self._state_out[:, -1]
        diverged = self._diverged()
        self.feet.update(self._sensor_out[:, :, self.info.sensor_foot_touch])
        self.episode_length += 1

        snap = self.snapshot()
        trunk_force = self._sensor_out[:, -c.terminations.base_contact_history :, self.info.sensor_trunk_touch]
        terminated = (trunk_force.max(axis=1) > c.terminations.base_contact_threshold) | diverged
        truncated = self.episode_length >= c.max_episode_steps
        terms = self._reward_terms(snap)
        rewards = weighted_sum(terms, c.rewards, c.policy_dt)
        rewards[diverged] = 0.0
        self.last_reward_terms = terms
        self.episode_return += rewards
        for name, value in terms.items():
            self.episode_terms[name] += c.rewards[name] * value * c.policy_dt
        self.episode_tracking_error += np.linalg.norm(self.commands.command[:, :2] - snap["lin_vel_b"][:, :2], axis=1)

        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        done_ids = np.flatnonzero(dones)
        if len(done_ids):
            terminal_obs = self._observe(snap)[done_ids]
            elapsed = round(time.perf_counter() - self._t0, 6)
            for k, i in enumerate(done_ids):
                infos[i] = {
                    "terminal_observation": terminal_obs[k],
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "episode": {"r": float(self.episode_return[i]), "l": int(self.episode_length[i]), "t": elapsed},
                    "reward_terms": {name: float(v[i]) for name, v in self.episode_terms.items()},
                    "tracking_error_xy": float(self.episode_tracking_error[i] / self.episode_length[i]),
                }
                if diverged[i]:
                    infos[i]["physics_diverged"] = True
            self._reset_envs(done_ids)

        changed = np.union1d(done_ids, self._apply_pushes())
        if len(changed):  # refresh only the rows that resets and pushes changed
            for key, value in self.snapshot(changed).items():
                snap[key][changed] = value
        self.commands.step(batch_math.yaw(snap["quat"]), self._rng)
        obs = self._observe(snap)
        return obs, rewards.astype(np.float32), dones, infos

    def _drain(self) -> None:
        """Let a step in flight finish (it writes the state arrays) and drop its result."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.exception()

    def close(self) -> None:
        self._drain()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._pool = None  # the thread pool is released with the object

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # ---- internals ----------------------------------------------------------------------------
    def _diverged(self) -> np.ndarray:
        bad = sanitize_diverged(self.state, self.qvel)
        self.num_diverged += int(bad.sum())
        return bad

    def _reward_terms(self, snap: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        c = self.contract
        qvel_last = self._state_out[:, -1, self._qvel_start : self._qvel_start + self._nv]
        qvel_prev = self._state_out[:, -2, self._qvel_start : self._qvel_start + self._nv] if c.decimation > 1 else None
        joints = self.info.qvel_joints
        joint_acc = (
            (qvel_last[:, joints] - qvel_prev[:, joints]) / c.sim_dt
            if qvel_prev is not None
            else np.zeros_like(snap["joint_vel"])
        )
        return state_reward_terms(
            snap,
            self.commands.command,
            joint_acc=joint_acc,
            torques=self._sensor_out[:, -1, self.info.sensor_actuator_force],
            action_raw=self.action_raw,
            prev_action_raw=self.prev_action_raw,
            feet=self.feet,
            policy_dt=c.policy_dt,
            params=c.reward_params,
            weights=c.rewards,
        )

    def _observe(self, snap: dict[str, np.ndarray]) -> np.ndarray:
        return self._obs_builder(snap, self.commands.command, self.action_raw, self._rng if self.obs_noise else None)

    def _reset_envs(self, env_ids: np.ndarray) -> None:
        n = len(env_ids)
        if n == 0:
            return
        c, rng = self.contract, self._rng
        if self.randomize:
            qpos, qvel, push_time = self._resets.sample(rng, n)
            self.push_time_left[env_ids] = push_time
        else:
            qpos, qvel = self._resets.nominal(n)
        self.state[env_ids] = 0.0
        self.state[env_ids, self._qpos_start : self._qvel_start] = qpos
        self.state[env_ids, self._qvel_start : self._qvel_start + self._nv] = qvel
        self.action_raw[env_ids] = 0.0
        self.prev_action_raw[env_ids] = 0.0
        self._prev_targets[:, env_ids] = c.clamp_joint_targets(c.raw_joint_targets(np.zeros(c.num_joints)))
        low, high = self.action_delay_range
        if high > low:
            self.action_delay[env_ids] = rng.integers(low, high + 1, size=n)
        self.episode_length[env_ids] = 0
        self.episode_return[env_ids] = 0.0
        for value in self.episode_terms.values():
            value[env_ids] = 0.0
        self.episode_tracking_error[env_ids] = 0.0
        self.feet.reset(env_ids)
        self.commands.resample(env_ids, rng)

    def _apply_pushes(self) -> np.ndarray:
        """Push the envs whose timer ran out; returns their ids."""
        interval = self.contract.randomization.push_interval_s
        if not self.randomize or interval is None:
            return np.zeros(0, dtype=np.int64)
        self.push_time_left -= self.contract.policy_dt
        push = np.flatnonzero(self.push_time_left <= 0.0)
        if len(push):
            pushes = self._rng.uniform(*self.contract.randomization.push_velocity_xy, size=(len(push), 2))
            self.qvel[push, 0:2] += pushes  # world-frame root velocity (a view into self.state)
            self.push_time_left[push] = self._rng.uniform(*interval, size=len(push))
        return push
