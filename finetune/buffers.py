"""The learner's replay data: SB3 buffers for real and simulated transitions and how a batch mixes them.

* :class:`MixedReplayBuffer`: an SB3 ``ReplayBuffer`` whose batches take ``real_fraction`` from the real buffer
  and the rest from the simulator's (all real while there is no simulator data);
* :class:`FrozenObsNorm`: the bundle's observation normalization, applied at sample time as SB3 does;
* :func:`simulated_buffer`: a simulator buffer for a bundle saved without one, from its own policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from a1_common.atomic import replacing
from a1_common.bundle import ObsNorm, load_replay_buffer, save_replay_buffer
from a1_contract import TaskContract


class FrozenObsNorm:
    """The bundle's observation normalization, frozen (the exported policies have it folded in).

    SB3's replay buffers call ``normalize_obs``/``normalize_reward`` of a ``VecNormalize`` at sample time.
    """

    def __init__(self, obs_norm: ObsNorm) -> None:
        self.obs_norm = obs_norm

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        return self.obs_norm.normalize(np.asarray(obs, dtype=np.float64)).astype(np.float32)

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        return reward


class MixedReplayBuffer(ReplayBuffer):
    """An SB3 ``ReplayBuffer`` over two others of the same spaces: each batch takes ``real_fraction`` of its rows
    from ``real`` (the robot's transitions) and the rest from ``sim`` (the simulator's); all from ``real`` while
    ``sim`` is None or empty, all from ``sim`` while ``real`` is empty.

    It holds no rows of its own and is what ``model.replay_buffer`` is while fine-tuning:

    * :meth:`sample` returns one ``ReplayBufferSamples``, the rows from ``real`` first, normalized through ``env``
      as SB3's buffers do (``env``: anything with SB3's ``VecNormalize`` ``normalize_obs``/``normalize_reward``,
      e.g. :class:`FrozenObsNorm`);
    * :meth:`add` (and ``extend``) store into ``real``; ``pos``, ``full``, ``buffer_size`` and ``reset()`` are
      ``real``'s (``sim`` is read-only here); :meth:`size` counts the rows of both;
    * row indices come from numpy's global generator, as in SB3's buffers (``np.random.seed`` repeats a run).

    ``per_batch_sampling``: the split is made per ``sample`` call, so a trainer must call :meth:`sample` once per
    batch. The fast update of :class:`~a1_common.algos.DelayedSAC` reads this flag and does (for SB3's own buffers it
    draws several batches in one call and slices them).
    """

    per_batch_sampling = True

    def __init__(self, sim: ReplayBuffer | None, real: ReplayBuffer, real_fraction: float) -> None:
        if not 0.0 <= real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
        self.sim, self.real, self.real_fraction = sim, real, float(real_fraction)
        # What ReplayBuffer.__init__ sets, but for its storage (the rows live in ``real`` and ``sim``).
        self.observation_space, self.action_space = real.observation_space, real.action_space
        self.obs_shape, self.action_dim = real.obs_shape, real.action_dim
        self.device, self.n_envs = real.device, real.n_envs
        self.optimize_memory_usage = False
        self.handle_timeout_termination = real.handle_timeout_termination

    @property
    def buffer_size(self) -> int:  # type: ignore[override]
        return self.real.buffer_size

    @property
    def pos(self) -> int:  # type: ignore[override]
        return self.real.pos

    @pos.setter
    def pos(self, value: int) -> None:
        self.real.pos = value

    @property
    def full(self) -> bool:  # type: ignore[override]
        return self.real.full

    @full.setter
    def full(self, value: bool) -> None:
        self.real.full = value

    def split(self, batch_size: int) -> tuple[int, int]:
        """(rows from real, rows from sim) for one batch."""
        if self.sim is None or self.sim.size() == 0:
            return batch_size, 0
        if self.real.size() == 0:
            return 0, batch_size
        n_real = int(round(batch_size * self.real_fraction))
        return n_real, batch_size - n_real

    def size(self) -> int:
        """Rows held in ``real`` and ``sim`` together (a row of ``sim`` holds one transition per simulator env)."""
        return self.real.size() + (self.sim.size() if self.sim is not None else 0)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """``ReplayBuffer.add`` on ``real``."""
        self.real.add(*args, **kwargs)

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        n_real, n_sim = self.split(batch_size)
        parts = [buf.sample(n, env=env) for buf, n in ((self.real, n_real), (self.sim, n_sim)) if n > 0]
        return _concat(parts)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        """Rows ``batch_inds`` (in this order) of ``real``'s rows followed by ``sim``'s."""
        n_real = self.real.size()
        in_real = batch_inds < n_real
        parts, rows = [], []
        for buf, mask, first in ((self.real, in_real, 0), (self.sim, ~in_real, n_real)):
            if mask.any():
                parts.append(buf._get_samples(batch_inds[mask] - first, env=env))
                rows.append(np.flatnonzero(mask))
        order = th.as_tensor(np.argsort(np.concatenate(rows), kind="stable"))
        return type(parts[0])(*(None if t is None else t[order] for t in _concat(parts)))


def _concat(parts: list[ReplayBufferSamples]) -> ReplayBufferSamples:
    if len(parts) == 1:
        return parts[0]
    return type(parts[0])(*(None if a is None else th.cat([a, b]) for a, b in zip(*parts, strict=True)))


class SpacesOnlyEnv(gym.Env):
    """Declares the spaces of a fresh model (SB3 builds a model from an env); never stepped."""

    def __init__(self, contract: TaskContract) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (contract.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (contract.num_joints,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raise RuntimeError("the fine-tuning learner never steps an environment")

    def step(self, action: Any):
        raise RuntimeError("the fine-tuning learner never steps an environment")


def new_buffer(model: Any, size: int, n_envs: int) -> Any:
    """An empty buffer of the model's replay-buffer class; ``size`` transitions in all (SB3: over all envs)."""
    return model.replay_buffer_class(
        size,
        model.observation_space,
        model.action_space,
        device=model.device,
        n_envs=n_envs,
        optimize_memory_usage=False,
        handle_timeout_termination=True,
        **(model.replay_buffer_kwargs or {}),
    )


def simulated_buffer(
    model: Any, cfg: Any, contract: TaskContract, transitions: int, cache: Path, progress: bool
) -> Any:
    """``transitions`` of ``model``'s stochastic policy in the embedded simulator under the training conditions of
    ``cfg`` (a :class:`~pretrain.config.TrainConfig`), stored as SB3 stores them (raw observations, true terminal
    observations); read from ``cache`` when it exists, else written there atomically."""
    from pretrain.factory import make_env

    num_envs = cfg.env.num_envs
    buffer = new_buffer(model, -(-transitions // num_envs) * num_envs, num_envs)
    if cache.is_file():
        load_replay_buffer(buffer, cache)
        return buffer
    env = make_env(cfg, contract, seed=cfg.seed + 7919)
    th.manual_seed(cfg.seed)
    normalize = model._vec_normalize_env.normalize_obs
    obs = env.reset()
    steps = range(buffer.buffer_size)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="simulator buffer", unit=" steps", dynamic_ncols=True, leave=False)
    for _ in steps:
        actions, _ = model.predict(normalize(obs), deterministic=False)
        new_obs, rewards, dones, infos = env.step(actions)
        next_obs = new_obs.copy()
        for i, done in enumerate(dones):
            if done:
                next_obs[i] = infos[i]["terminal_observation"]
        buffer.add(obs, next_obs, actions, rewards, dones, infos)
        obs = new_obs
    env.close()
    with replacing(cache) as tmp:
        save_replay_buffer(buffer, tmp)
    return buffer
