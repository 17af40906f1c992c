"""The robot-side actor of fine-tuning: the policy node's control loop, exploring and recording (numpy +
onnxruntime only, no torch).

:class:`FinetuneLoop` is the policy node's :class:`~robot_bridge.control.PolicyLoop` with three changes:

* the action is sampled from the policy's Gaussian (``mean``/``log_std`` outputs of the ONNX file, squashed as in
  training) unless ``explore`` is off; it still passes through the same safety layer;
* every control period becomes a transition ``(obs, normalized action, reward, next obs, terminated,
  truncated)`` with a sequence number (the action is the policy's; the safety layer's bounding counts as part of
  the robot's dynamics, as clipping does in the simulator), handed to :class:`~finetune.transport.ActorClient`
  (which spools it to disk and delivers it exactly once); the reward is :class:`~finetune.reward.RobotReward`'s,
  from measurements;
* a new policy from the learner is loaded off the control path and swapped in at the start of a tick, never
  during one.

With ``score_ground_truth`` (emulator only) a referee scores every step too: a second
:class:`~finetune.reward.RobotReward` fed from the emulator's noise-free ``ground_truth/*`` topics (``on_truth_*``;
the foot forces are shared, the emulator adds no noise to them), for
:attr:`~finetune.episodes.EpisodeRecord.true_ret`. The learner still gets the measured reward: a real robot has no
ground truth. A step without fresh ground truth (none yet, or older than the safety watchdog's timeout) leaves its
episode without a true return, never with an invented one.

Episodes end as :mod:`finetune.episodes` lays out (what the learner sees). A transition whose next state cannot be
measured (non-finite state, no state) is dropped and counted, never invented. A new episode also resamples the
velocity command when ``command_mode`` is ``sample``.

The tick is :meth:`PolicyLoop.tick <robot_bridge.control.PolicyLoop.tick>`; this loop chooses the action
(``_policy_targets``) and adds its bookkeeping before and after the safety layer's step (``_before_step``,
``_after_step``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.runner import PolicyRunner
from finetune.episodes import ActorStats, EpisodeEnd, EpisodeRecord
from finetune.policy_loader import PolicyLoader
from finetune.reward import RobotReward
from robot_bridge.control import PolicyLoop
from robot_bridge.observation import projected_gravity_from_xyzw
from robot_bridge.safety import SafetyController, SafetyDecision, SafetyStatus, StateSample

CHOICES: dict[str, tuple[str, ...]] = {"command_mode": ("fixed", "sample"), "on_learner_lost": ("keep", "stand")}
"""The loop's settings that take one of a few names."""


def check_choices(values: dict[str, Any], what: str = "") -> None:
    """Raise ``ValueError`` naming the first of :data:`CHOICES` whose value in ``values`` is not allowed."""
    for name, allowed in CHOICES.items():
        if values[name] not in allowed:
            raise ValueError(f"{what}{name} must be one of {allowed}, got {values[name]!r}")


@dataclass
class _Pending:
    obs: np.ndarray
    action: np.ndarray
    """Normalized action in [-1, 1] (what the learner stores)."""
    raw: np.ndarray
    prev_raw: np.ndarray
    policy_version: int


class FinetuneLoop(PolicyLoop):
    """See the module docs. ``client``: an :class:`~finetune.transport.ActorClient` or ``None`` (record locally,
    e.g. to measure returns without a learner)."""

    def __init__(
        self,
        runner: PolicyRunner,
        safety: SafetyController,
        initial_command: Sequence[float] = (0.0, 0.0, 0.0),
        *,
        client: Any = None,
        policy_dir: str | Path | None = None,
        explore: bool = True,
        command_mode: str = "fixed",
        episode_steps: int | None = None,
        on_learner_lost: str = "keep",
        seed: int = 0,
        score_ground_truth: bool = False,
        log: Callable[[str], None] = print,
    ) -> None:
        super().__init__(runner, safety, initial_command)
        check_choices({"command_mode": command_mode, "on_learner_lost": on_learner_lost})
        c = self.contract
        self.client = client
        self.explore = explore
        self.command_mode = command_mode
        self.fixed_command = self.command.copy()
        self.episode_steps = episode_steps or c.max_episode_steps
        self.on_learner_lost = on_learner_lost
        self.rng = np.random.default_rng(seed)
        self.reward = RobotReward(c)
        self.referee = RobotReward(c) if score_ground_truth else None
        """Scores each step from the ground truth (``on_truth_*``; foot forces: ``on_feet``'s) or None."""
        self._truth_imu: tuple[np.ndarray, np.ndarray] | None = None
        """Ground truth: projected gravity and angular velocity (trunk frame)."""
        self._truth_stamps = {"joints": -np.inf, "imu": -np.inf, "body_velocity": -np.inf}
        self.stats = ActorStats()
        self.log = log
        self.policy_version = 0
        self.loader = PolicyLoader(client, Path(policy_dir), c, log) if client is not None and policy_dir else None
        self.swap_times: list[tuple[int, float, float]] = []
        """(version, received by the loader, swapped in by a tick) in monotonic seconds."""
        self._pending: _Pending | None = None
        self._episode_steps_done = 0
        self._episode_return = 0.0
        self._episode_terms: dict[str, float] = {}
        self._true_return: float | None = None
        self._true_terms: dict[str, float] = {}
        self._end_request: EpisodeEnd | None = None
        self._new_episode()

    # ---- measurements the reward needs beyond the policy's inputs ------------------------------
    def on_joints(self, stamp, names, position, velocity, effort=None) -> None:
        super().on_joints(stamp, names, position, velocity, effort)
        joints = self.assembler.joints
        eff = joints.reorder(names, effort, "effort") if effort is not None and len(effort) == len(names) else None
        self.reward.on_joints(stamp, self._joints.values[1], eff)

    def on_feet(self, stamp: float, forces: Sequence[float]) -> None:
        self.reward.on_feet(stamp, np.asarray(forces, dtype=np.float64))
        if self.referee is not None:  # the emulator's foot forces carry no noise: the referee's too
            self.referee.on_feet(stamp, np.asarray(forces, dtype=np.float64))

    def on_body_velocity(self, stamp: float, linear_velocity: Sequence[float]) -> None:
        super().on_body_velocity(stamp, linear_velocity)
        self.reward.on_body_velocity(np.asarray(linear_velocity, dtype=np.float64))

    # ---- the referee's ground truth (the emulator's ground_truth/* topics) -----------------------
    def on_truth_joints(self, stamp, names, position, velocity, effort) -> None:
        """Noise-free joint state, matched by name (the reward reads no position); raises
        :class:`~robot_bridge.observation.MissingJointsError`."""
        if self.referee is None:
            return
        joints = self.assembler.joints
        eff = joints.reorder(names, effort, "effort") if effort is not None and len(effort) == len(names) else None
        self.referee.on_joints(stamp, joints.reorder(names, velocity, "velocity"), eff)
        self._truth_stamps["joints"] = stamp

    def on_truth_imu(self, stamp: float, orientation_xyzw: Sequence[float], angular_velocity: Sequence[float]) -> None:
        if self.referee is None:
            return
        self._truth_imu = (projected_gravity_from_xyzw(orientation_xyzw), np.asarray(angular_velocity, np.float64))
        self._truth_stamps["imu"] = stamp

    def on_truth_body_velocity(self, stamp: float, linear_velocity: Sequence[float]) -> None:
        if self.referee is None:
            return
        self.referee.on_body_velocity(np.asarray(linear_velocity, dtype=np.float64))
        self._truth_stamps["body_velocity"] = stamp

    def _truth_for(self, state: StateSample) -> tuple[np.ndarray, np.ndarray] | None:
        """The ground-truth IMU sample to score ``state``'s step with, or None when any ground truth is missing or
        older than the safety layer's watchdog allows for measurements (never a stale or invented one)."""
        oldest = state.stamp - self.safety.config.watchdog_timeout_s
        if self._truth_imu is None or min(self._truth_stamps.values()) < oldest:
            return None
        return self._truth_imu

    # ---- episodes -----------------------------------------------------------------------------
    def end_episode(self, why: EpisodeEnd | str = EpisodeEnd.OPERATOR) -> None:
        """Ask for the running episode to end at the next tick (operator reset)."""
        self._end_request = EpisodeEnd(why)

    def _new_episode(self) -> None:
        self._episode_steps_done = 0
        self._episode_return = 0.0
        self._episode_terms = {}
        self._true_return = 0.0 if self.referee is not None else None
        self._true_terms = {}
        if self.command_mode == "sample":
            r = self.contract.commands
            self.command = np.array(
                [self.rng.uniform(*r.lin_vel_x), self.rng.uniform(*r.lin_vel_y), self.rng.uniform(*r.ang_vel_z)]
            )
        else:
            self.command = self.fixed_command.copy()

    def on_command(self, vx: float, vy: float, yaw_rate: float) -> None:
        super().on_command(vx, vy, yaw_rate)
        self.fixed_command = self.command.copy()

    # ---- the tick -----------------------------------------------------------------------------
    def _before_step(self, state: StateSample | None) -> None:
        """Before the safety layer steps: swap in a new policy, end the episode if asked or if the learner is lost."""
        if self.loader is not None:
            ready = self.loader.take()
            if ready is not None:  # between ticks: the previous tick is over, this one has not run the policy
                version, runner, received = ready
                self.runner, self.policy_version = runner, version
                self.stats.policy_swaps += 1
                self.stats.policy_version = version
                self.swap_times.append((version, received, time.monotonic()))
                if self.client is not None:
                    self.client.set_policy_version(version)
        if self._end_request is not None:
            if self._pending is None:  # no episode step in flight (the policy was not running): nothing to end
                self._end_request = None
            elif state is not None:
                self._close(state, self._end_request)
                self._end_request = None
        if self._learner_lost():
            self.stats.learner_lost_ticks += 1
            if self.on_learner_lost == "stand" and self._pending is not None and state is not None:
                self._close(state, EpisodeEnd.INTERRUPTED)

    def _after_step(self, state: StateSample | None, decision: SafetyDecision) -> None:
        """After the safety layer's decision: count a bounded action; when the policy stopped, end the episode with
        the pending transition (before the tick zeroes ``last_action``: the next obs holds the last action taken),
        or drop it when the next state cannot be measured."""
        if decision.policy_ran and decision.command is not None and self._pending is not None:
            self._count_bounded(decision.command)
        if decision.status is not SafetyStatus.RUNNING and self._pending is not None:
            if state is not None and _finite(state):
                end = EpisodeEnd.FALL if decision.status is SafetyStatus.FALLEN else EpisodeEnd.INTERRUPTED
                self._close(state, end)
            else:
                self._pending = None
                self.stats.dropped += 1

    def _count_bounded(self, command: np.ndarray) -> None:
        """Count the ticks in which the safety layer changed the policy's targets (per-tick bound, joint limits).

        The transition keeps the policy's own action: the bounding is part of the robot's dynamics, as the
        simulator's clipping is. (Storing the bounded action instead was measured to ruin fine-tuning: the actor
        drifted to actions the data never covers, where the critics extrapolate; benchmarks/finetune_gain.py.)
        """
        c, p = self.contract, self._pending
        raw = (np.asarray(command, dtype=np.float64) - np.asarray(c.default_joint_pos)) / c.action_scale
        if not np.allclose(raw, p.raw, atol=1e-6):
            self.stats.actions_bounded += 1

    def _learner_lost(self) -> bool:
        return self.client is not None and not self.client.connected

    def _policy_targets(self, state: StateSample) -> np.ndarray:
        if self._learner_lost() and self.on_learner_lost == "stand":
            self.last_action[:] = 0.0
            return self.contract.raw_joint_targets(self.last_action)  # the default pose
        obs = self.observation(state, self.command)
        if self._pending is not None:
            self._complete(obs, state, terminated=False, end=None)
        if self._episode_steps_done >= self.episode_steps:  # the transition just stored was the last one
            self._new_episode()
        if self.explore:
            raw, normalized = self.runner.sample(obs, self.rng)
        else:
            raw = self.runner.act(obs)
            normalized = np.clip(self.contract.action_bounds.to_normalized(raw), -1.0, 1.0)
        prev = self.last_action.copy()
        self.last_action = raw.astype(np.float64)
        self._pending = _Pending(obs, normalized.astype(np.float32), self.last_action.copy(), prev, self.policy_version)
        return self.contract.raw_joint_targets(self.last_action)

    def _close(self, state: StateSample, end: EpisodeEnd) -> None:
        """End the episode with the pending transition, its next observation measured from ``state``."""
        self._complete(self.observation(state, self.command), state, terminated=end.terminated, end=end)
        self._new_episode()

    def _complete(self, next_obs: np.ndarray, state: StateSample, *, terminated: bool, end: EpisodeEnd | None) -> None:
        p, self._pending = self._pending, None
        reward, terms = self.reward.step(
            ang_vel_b=state.extras["base_ang_vel"],
            projected_gravity=state.projected_gravity,
            command=self.command,
            action_raw=p.raw,
            prev_action_raw=p.prev_raw,
        )
        self._episode_steps_done += 1
        if end is None and self._episode_steps_done >= self.episode_steps:
            end = EpisodeEnd.TIMEOUT
        truncated = end is not None and not terminated
        self._episode_return += reward
        self._add_terms(self._episode_terms, terms)
        if self._true_return is not None:
            self._referee_step(state, p)
        if self.client is not None:
            self.client.submit(
                p.obs, p.action, reward, next_obs.astype(np.float32), terminated, truncated, p.policy_version, terms
            )
        self.stats.transitions += 1
        by_version = self.stats.transitions_by_version
        by_version[p.policy_version] = by_version.get(p.policy_version, 0) + 1
        if end is not None:
            self.stats.episodes += 1
            self.stats.falls += int(terminated)
            self.stats.episode_log.append(
                EpisodeRecord(
                    index=self.stats.episodes,
                    steps=self._episode_steps_done,
                    ret=round(self._episode_return, 5),
                    end=end.value,
                    policy_version=p.policy_version,
                    command=[round(float(c), 4) for c in self.command],
                    terms={k: round(v, 5) for k, v in self._episode_terms.items()},
                    wall_time=time.time(),
                    true_ret=None if self._true_return is None else round(self._true_return, 5),
                    true_terms={k: round(v, 5) for k, v in self._true_terms.items()},
                )
            )

    def _add_terms(self, sums: dict[str, float], terms: dict[str, float]) -> None:
        weights, dt = self.contract.rewards, self.contract.policy_dt
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + weights[name] * value * dt

    def _referee_step(self, state: StateSample, p: _Pending) -> None:
        """Score the step as :meth:`_complete` did, from the ground truth; without it, no true return this episode."""
        truth = self._truth_for(state)
        if truth is None:
            self._true_return, self._true_terms = None, {}
            return
        gravity, gyro = truth
        reward, terms = self.referee.step(
            ang_vel_b=gyro,
            projected_gravity=gravity,
            command=self.command,
            action_raw=p.raw,
            prev_action_raw=p.prev_raw,
        )
        self._true_return += reward
        self._add_terms(self._true_terms, terms)

    def stop(self, reason: str = "stopped") -> None:
        """Stop exploring (e-stop latch: damping) and end the running episode at the next tick."""
        self.safety.estop(reason)

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()


def _finite(state: StateSample) -> bool:
    arrays = [state.joint_pos, state.projected_gravity, *state.extras.values()]
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)
