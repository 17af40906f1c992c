"""The SBX (Stable-Baselines Jax) side of ``learner_speed.py``: loading SBX with XLA held to the benchmark's threads,
and an ``sbx.SAC`` / ``sbx.TQC`` built with our model's settings where SBX has them. SBX is a baseline, never a
dependency of the package (the optional ``bench`` extra)."""

from __future__ import annotations

import os
from typing import Any

from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
from pretrain.config import TrainConfig

SBX_MISSING = "SBX baseline: sbx is not installed (pip install -e .[bench]); its column is left out"


def load_sbx(enabled: bool, threads: int, device: str) -> tuple[Any, str]:
    """(the ``sbx`` module or None, a line saying which SBX runs or why none). Sets XLA's thread and platform
    flags first (they only take effect if JAX is not loaded yet)."""
    if not enabled:
        return None, "SBX baseline: skipped (--no-sbx)"
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import sbx
    except ImportError:
        return None, SBX_MISSING
    import jax

    version = getattr(sbx, "__version__", "?")
    return sbx, f"SBX baseline: sbx {version}, jax {jax.__version__} on {jax.default_backend()}"


def shared_settings(ref: OffPolicyAlgorithm) -> dict[str, Any]:
    """The settings of ``ref`` (``ours``) that every baseline takes as they are (SB3's and SBX's names agree)."""
    names = ("learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
             "gradient_steps", "target_entropy", "n_steps", "seed")  # fmt: skip
    return {name: getattr(ref, name) for name in names}


def sbx_like(sbx: Any, algo: str, cfg: TrainConfig, ref: OffPolicyAlgorithm, env: A1MujocoVecEnv) -> Any:
    """``sbx.SAC`` / ``sbx.TQC`` with the settings of ``ref`` (``ours``) that SBX has."""
    import flax.linen as nn
    import optax

    o = cfg.offpolicy
    activations = {"elu": nn.elu, "relu": nn.relu, "tanh": nn.tanh, "silu": nn.silu}
    policy_kwargs: dict[str, Any] = {
        "net_arch": list(o.net_arch),
        "activation_fn": activations[o.activation],
        "n_critics": o.n_critics,
        "layer_norm": bool(o.critic_layer_norm),
    }
    if o.optimizer == "adamw":
        policy_kwargs["optimizer_class"] = optax.adamw
        policy_kwargs["optimizer_kwargs"] = {"weight_decay": o.weight_decay}
    else:
        policy_kwargs["optimizer_class"] = optax.adam
    extra: dict[str, Any] = {}
    if algo == "tqc":
        policy_kwargs["n_quantiles"] = o.n_quantiles
        extra["top_quantiles_to_drop_per_net"] = o.top_quantiles_to_drop_per_net
    cls = sbx.TQC if algo == "tqc" else sbx.SAC
    return cls(
        "MlpPolicy",
        env,
        **shared_settings(ref),
        policy_delay=ref.policy_delay,
        ent_coef=o.ent_coef if str(o.ent_coef).startswith("auto") else float(o.ent_coef),
        policy_kwargs=policy_kwargs,
        verbose=0,
        **extra,
    )
