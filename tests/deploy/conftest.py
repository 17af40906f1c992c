"""Policies to export, made once per test session: tiny trained bundles (real SB3 on the real MuJoCo env)
and untrained bundles for other contracts, plus their exported ONNX files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch as th

from a1_common.bundle import ObsNorm, write_bundle
from a1_contract import TaskContract, get_contract
from deploy.export import export_policy
from pretrain.config import resolve
from pretrain.factory import make_model
from pretrain.train import train

TINY_FLAGS = {
    "timesteps": 200,
    "seed": 0,
    "checkpoint_minutes": 0,
    "env.num_envs": 4,
    "offpolicy.net_arch": [32, 32],
    "offpolicy.learning_starts": 50,
    "offpolicy.buffer_size": 5000,
    "ppo.n_steps": 16,
    "ppo.net_arch": [32, 32],
    "ppo.n_epochs": 1,
}
# Parity on fewer simulator steps than the CLI default keeps each export at a few seconds.
QUICK_PARITY = {"sim_envs": 4, "sim_steps": 50, "num_random_obs": 512}


def swapped_joints(contract: TaskContract, i: int = 0, j: int = 1) -> TaskContract:
    """The same robot with joints ``i`` and ``j`` listed in the other order (every per-joint tuple permuted)."""
    order = list(range(contract.num_joints))
    order[i], order[j] = order[j], order[i]
    pick = lambda values: tuple(values[k] for k in order)  # noqa: E731
    bounds = contract.action_bounds
    return contract.replace(
        joint_names=pick(contract.joint_names),
        default_joint_pos=pick(contract.default_joint_pos),
        joint_pos_limits=pick(contract.joint_pos_limits),
        kp=pick(contract.kp),
        kd=pick(contract.kd),
        effort_limit=pick(contract.effort_limit),
        velocity_limit=pick(contract.velocity_limit),
        sdk_motor_index=pick(contract.sdk_motor_index),
        action_bounds=type(bounds)(pick(bounds.low), pick(bounds.high), bounds.method),
    )


def fresh_bundle(
    dest: Path,
    contract: TaskContract,
    algo: str = "sac",
    log_std: float | None = None,
    obs_norm: ObsNorm | None = None,
) -> Path:
    """An untrained bundle for ``contract`` (random obs statistics unless ``obs_norm``); ``log_std`` fixes
    the policy's std."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

    cfg = resolve(None, {**TINY_FLAGS, "algo": algo, "device": "cpu", "env.num_envs": 1})
    env = A1MujocoVecEnv(1, contract, seed=0, num_threads=1)
    model = make_model(cfg, env)
    env.close()
    if log_std is not None:
        with th.no_grad():
            if algo == "ppo":
                model.policy.log_std.fill_(log_std)
            else:
                model.policy.actor.log_std.weight.zero_()
                model.policy.actor.log_std.bias.fill_(log_std)
    if obs_norm is None:
        rng = np.random.default_rng(0)
        dim = contract.obs_dim
        obs_norm = ObsNorm(rng.normal(0, 0.3, dim), rng.uniform(0.05, 4.0, dim), 1e4, 10.0, 1e-8)
    return write_bundle(dest, model, obs_norm, contract, cfg.to_yaml(), algo=algo, with_replay_buffer=False)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Callable[[str], Path]:
    """``tiny_bundle(algo)``: a bundle trained for 200 transitions, trained on first use."""
    cache: dict[str, Path] = {}

    def get(algo: str) -> Path:
        if algo not in cache:
            out = tmp_path_factory.mktemp(f"tiny_{algo}")
            train(resolve(None, {**TINY_FLAGS, "algo": algo, "out": str(out)}), progress=False)
            cache[algo] = out / "checkpoints" / "latest"
        return cache[algo]

    return get


@pytest.fixture(scope="session")
def exported(tiny_bundle, tmp_path_factory) -> Callable[[str], Path]:
    """``exported(algo)``: the tiny bundle of ``algo`` exported to ONNX (parity checked), on first use."""
    cache: dict[str, Path] = {}

    def get(algo: str) -> Path:
        if algo not in cache:
            out = tmp_path_factory.mktemp(f"onnx_{algo}") / "policy.onnx"
            export_policy(tiny_bundle(algo), out, **QUICK_PARITY)
            cache[algo] = out
        return cache[algo]

    return get


@pytest.fixture(scope="session")
def exported_fresh(tmp_path_factory) -> Callable[..., Path]:
    """``exported_fresh(name, contract, algo, log_std)``: an untrained policy for any contract, exported."""
    cache: dict[str, Path] = {}

    def get(name: str, contract: TaskContract | None = None, algo: str = "sac", log_std: float | None = None) -> Path:
        if name not in cache:
            root = tmp_path_factory.mktemp(f"fresh_{name}")
            bundle = fresh_bundle(root / "bundle", contract or get_contract(), algo, log_std)
            export_policy(bundle, root / "policy.onnx", **QUICK_PARITY)
            cache[name] = root / "policy.onnx"
        return cache[name]

    return get
