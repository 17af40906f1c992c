"""Left-right mirrored transitions in SAC/TQC batches (``offpolicy.mirror_fraction``).

Each sampled transition is, with probability ``fraction``, replaced by its mirror image (the contract's
:mod:`a1_contract.symmetry`): observation, next observation and action reflected in the robot's sagittal
plane; reward and done are unchanged (every reward term of the task is mirror-invariant). The learner then
sees a turn left for every turn right it made, a step to the right for every step to the left, and learns
one gait for both sides; without it a squashed-Gaussian policy settles into whichever side it found first
(measured: turning at +1 rad/s failed while -1 rad/s tracked, and straight walking drifted in yaw).

Actions are stored normalized ([-1, 1] within the contract's action bounds); bounds that are not mirror
symmetric (the PPO-percentile bounds are not) cannot express some mirrored actions: such transitions keep
their original form (the counters say how often). The buffer stores raw observations (SB3 normalizes when
sampling), so they are mirrored before normalization. Only SB3's plain ``ReplayBuffer`` is supported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from a1_contract import TaskContract
from a1_contract.symmetry import Mirror, mirror_of


class MirrorReplayBuffer(ReplayBuffer):
    """SB3 ``ReplayBuffer`` whose samples are partly mirrored; made by :func:`enable_mirror`."""

    mirror: Mirror
    fraction: float
    bounds_low: np.ndarray
    bounds_high: np.ndarray
    counts: dict[str, int]

    def configure(self, contract: TaskContract, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"offpolicy.mirror_fraction must be in [0, 1], got {fraction}")
        self.mirror = mirror_of(contract)
        self.fraction = float(fraction)
        self.bounds_low = np.asarray(contract.action_bounds.low, dtype=np.float64)
        self.bounds_high = np.asarray(contract.action_bounds.high, dtype=np.float64)
        self.counts = {"sampled": 0, "mirrored": 0, "not_expressible": 0}

    def mirror_actions(self, actions: np.ndarray) -> np.ndarray:
        """Normalized actions -> their mirror image, normalized (may leave [-1, 1] for asymmetric bounds)."""
        span = self.bounds_high - self.bounds_low
        raw = self.bounds_low + (actions + 1.0) * 0.5 * span
        return 2.0 * (self.mirror.joints(raw) - self.bounds_low) / span - 1.0

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        obs = self.observations[batch_inds, env_indices, :].copy()
        next_obs = self.next_observations[batch_inds, env_indices, :].copy()
        actions = self.actions[batch_inds, env_indices, :].copy()
        flip = np.flatnonzero(np.random.random(len(batch_inds)) < self.fraction)
        if len(flip):
            mirrored = self.mirror_actions(actions[flip].astype(np.float64))
            ok = np.all(np.abs(mirrored) <= 1.0 + 1e-5, axis=1)
            rows = flip[ok]
            obs[rows] = self.mirror.obs(obs[rows].astype(np.float64)).astype(obs.dtype)
            next_obs[rows] = self.mirror.obs(next_obs[rows].astype(np.float64)).astype(next_obs.dtype)
            actions[rows] = np.clip(mirrored[ok], -1.0, 1.0).astype(actions.dtype)
            self.counts["mirrored"] += int(len(rows))
            self.counts["not_expressible"] += int(len(flip) - len(rows))
        self.counts["sampled"] += len(batch_inds)
        data = (
            self._normalize_obs(obs, env),
            actions,
            self._normalize_obs(next_obs, env),
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))


def enable_mirror(model: Any, contract: TaskContract, fraction: float) -> MirrorReplayBuffer:
    """Turn ``model.replay_buffer`` (filled or empty, its data kept) into a :class:`MirrorReplayBuffer`.

    The model itself is unchanged (``model.zip`` still names SB3's ``ReplayBuffer``), so bundles load the same
    with or without mirroring; training switches it on from the config."""
    buffer = model.replay_buffer
    if type(buffer) not in (ReplayBuffer, MirrorReplayBuffer) or buffer.optimize_memory_usage:
        raise ValueError(
            f"offpolicy.mirror_fraction needs SB3's plain ReplayBuffer (offpolicy.n_steps 1), "
            f"got {type(buffer).__name__}"
        )
    buffer.__class__ = MirrorReplayBuffer
    buffer.configure(contract, fraction)
    return buffer
