"""Build what a config names: the contract with its bounds, the simulator backend, the SB3 model.

Backends sit behind :func:`make_env`; Isaac Lab is imported only when ``env.sim == "isaaclab"``.
"""

from __future__ import annotations

import math
from typing import Any

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from torch import nn

from a1_common.algos import ALGO_CLASSES, LayerNormSACPolicy, LayerNormTQCPolicy
from a1_common.bundle import BUFFER_FILE, BundleFiles, ObsNorm, load_replay_buffer
from a1_contract import TaskContract, get_contract
from pretrain.bounds import resolve_bounds
from pretrain.config import TrainConfig

__all__ = ["ALGO_CLASSES", "make_contract", "make_env", "make_model"]
ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
OPTIMIZERS: dict[str, type[th.optim.Optimizer]] = {"adam": th.optim.Adam, "adamw": th.optim.AdamW}


def make_contract(cfg: TrainConfig) -> TaskContract:
    """The contract variant ``cfg.env.contract`` with the bounds ``cfg.bounds`` names."""
    base = get_contract(cfg.env.contract)
    return base.replace(action_bounds=resolve_bounds(cfg.bounds, base))


def latency_substeps(latency_s: list[float], contract: TaskContract) -> tuple[int, int]:
    """``env.action_latency_s`` in physics steps (rounded); at most two policy steps."""
    low, high = (int(round(float(v) / contract.sim_dt)) for v in latency_s)
    if high > 2 * contract.decimation:
        raise ValueError(
            f"env.action_latency_s {list(latency_s)} exceeds two policy steps ({2 * contract.policy_dt:g} s), the most "
            "the simulator models"
        )
    return low, high


def make_env(
    cfg: TrainConfig,
    contract: TaskContract,
    *,
    seed: int | None = None,
    num_envs: int | None = None,
    background: bool = False,
) -> VecEnv:
    """The simulator, un-normalized; actions are normalized [-1, 1] on every backend. ``background``: steps run on
    a worker thread between ``step_async`` and ``step_wait`` (mujoco only; :mod:`a1_common.algos.concurrent`)."""
    seed = cfg.seed if seed is None else seed
    num_envs = num_envs or cfg.env.num_envs
    if cfg.env.sim == "mujoco":
        from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

        return A1MujocoVecEnv(
            num_envs,
            contract,
            seed=seed,
            num_threads=cfg.env.threads,
            obs_noise=cfg.env.obs_noise,
            randomize=cfg.env.randomize,
            action_delay_substeps=latency_substeps(cfg.env.action_latency_s, contract),
            background=background,
        )
    if cfg.env.sim == "isaaclab":
        from pretrain.isaaclab_backend import make_isaaclab_env

        if background:
            raise ValueError(
                "offpolicy.concurrent_update needs the mujoco backend (Isaac Lab steps on the GPU already)"
            )
        if any(cfg.env.action_latency_s):
            raise ValueError("env.action_latency_s is modelled by the mujoco backend only; keep [0, 0] on isaaclab")

        return make_isaaclab_env(contract, num_envs, seed=seed, task_id=cfg.env.task_id or None, device=cfg.env.device)
    raise ValueError(f"unknown simulator {cfg.env.sim!r}")


def wrap_obs_norm(venv: VecEnv, cfg: TrainConfig, obs_norm: ObsNorm | None = None, training: bool = True) -> VecEnv:
    """SB3 ``VecNormalize`` on observations only (rewards stay in the contract's units)."""
    if not cfg.normalize_obs:
        return venv
    wrapped = VecNormalize(venv, training=training, norm_obs=True, norm_reward=False, clip_obs=cfg.clip_obs)
    if obs_norm is not None:
        wrapped.obs_rms.mean = obs_norm.mean.astype(float).copy()
        wrapped.obs_rms.var = obs_norm.var.astype(float).copy()
        wrapped.obs_rms.count = obs_norm.count
        wrapped.epsilon = obs_norm.epsilon
    return wrapped


def obs_norm_of(venv: VecEnv, obs_dim: int) -> ObsNorm:
    if isinstance(venv, VecNormalize):
        rms = venv.obs_rms
        return ObsNorm(rms.mean.copy(), rms.var.copy(), float(rms.count), float(venv.clip_obs), float(venv.epsilon))
    return ObsNorm.identity(obs_dim)


def _quiet(model: BaseAlgorithm, tensorboard_log: str | None) -> BaseAlgorithm:
    """Without TensorBoard, an SB3 logger that writes nowhere (SB3's default creates an empty /tmp/SB3-<time>)."""
    if tensorboard_log is None:
        model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def make_model(
    cfg: TrainConfig,
    env: VecEnv,
    tensorboard_log: str | None = None,
    model_class: type[BaseAlgorithm] | None = None,
) -> BaseAlgorithm:
    """A fresh SB3 model for ``cfg.algo`` (hyperparameters from ``cfg.offpolicy`` or ``cfg.ppo``); ``model_class``
    replaces the algorithm's class with a subclass of it (fine-tuning's anchored SAC/TQC)."""
    return _quiet(_make_model(cfg, env, tensorboard_log, model_class), tensorboard_log)


def _make_model(
    cfg: TrainConfig, env: VecEnv, tensorboard_log: str | None, model_class: type[BaseAlgorithm] | None = None
) -> BaseAlgorithm:
    common: dict[str, Any] = {"seed": cfg.seed, "device": cfg.device, "tensorboard_log": tensorboard_log, "verbose": 0}
    if cfg.algo == "ppo":
        p = cfg.ppo
        policy_kwargs = {
            "net_arch": {"pi": list(p.net_arch), "vf": list(p.net_arch)},
            "activation_fn": ACTIVATIONS[p.activation],
            "log_std_init": math.log(p.init_std),
            "ortho_init": False,
            "optimizer_kwargs": {"eps": 1e-8},
        }
        return PPO(
            "MlpPolicy",
            env,
            learning_rate=p.learning_rate,
            n_steps=p.n_steps,
            batch_size=p.n_steps * env.num_envs // p.n_minibatches,
            n_epochs=p.n_epochs,
            gamma=p.gamma,
            gae_lambda=p.gae_lambda,
            clip_range=p.clip_range,
            ent_coef=p.ent_coef,
            vf_coef=p.vf_coef,
            max_grad_norm=p.max_grad_norm,
            policy_kwargs=policy_kwargs,
            **common,
        )
    o = cfg.offpolicy
    if o.optimizer not in OPTIMIZERS:
        raise ValueError(f"offpolicy.optimizer must be one of {sorted(OPTIMIZERS)}, got {o.optimizer!r}")
    if o.activation not in ACTIVATIONS:
        raise ValueError(f"offpolicy.activation must be one of {sorted(ACTIVATIONS)}, got {o.activation!r}")
    policy_kwargs = {
        "net_arch": list(o.net_arch),
        "activation_fn": ACTIVATIONS[o.activation],
        "optimizer_class": OPTIMIZERS[o.optimizer],
        "n_critics": o.n_critics,
    }
    if o.optimizer == "adamw" or o.weight_decay:
        policy_kwargs["optimizer_kwargs"] = {"weight_decay": o.weight_decay}
    if cfg.algo == "tqc":
        policy_kwargs["n_quantiles"] = o.n_quantiles
        policy = LayerNormTQCPolicy if o.critic_layer_norm else "MlpPolicy"
        extra = {"top_quantiles_to_drop_per_net": o.top_quantiles_to_drop_per_net}
    else:
        policy = LayerNormSACPolicy if o.critic_layer_norm else "MlpPolicy"
        extra = {}
    ent_coef: Any = o.ent_coef if str(o.ent_coef).startswith("auto") else float(o.ent_coef)
    cls = ALGO_CLASSES[cfg.algo]
    if model_class is not None and not issubclass(model_class, cls):
        raise TypeError(f"{model_class.__name__} is not a {cls.__name__}")
    return (model_class or cls)(
        policy,
        env,
        learning_rate=o.learning_rate,
        buffer_size=o.buffer_size,
        learning_starts=o.learning_starts,
        batch_size=o.batch_size,
        tau=o.tau,
        gamma=o.gamma,
        train_freq=(o.train_freq, "step"),
        gradient_steps=o.gradient_steps,
        ent_coef=ent_coef,
        target_entropy="auto" if o.target_entropy is None else o.target_entropy,
        n_steps=o.n_steps,
        policy_delay=o.policy_delay,
        fast_update=o.fast_update,
        policy_kwargs=policy_kwargs,
        **extra,
        **common,
    )


def load_model(
    bundle: BundleFiles,
    env: VecEnv | None,
    device: str = "auto",
    with_replay_buffer: bool = True,
    tensorboard_log: str | None = None,
) -> BaseAlgorithm:
    """The SB3 model of a verified bundle (optimizer states, step count, replay buffer if present)."""
    cls = ALGO_CLASSES[bundle.algo]
    model = cls.load(bundle.path / "model.zip", env=env, device=device)
    if tensorboard_log is not None:
        model.tensorboard_log = tensorboard_log
    _quiet(model, tensorboard_log)
    if with_replay_buffer and bundle.has_replay_buffer and bundle.algo != "ppo":
        load_replay_buffer(model.replay_buffer, bundle.path / BUFFER_FILE)
    return model
