"""Parity of an exported policy: the ONNX file under onnxruntime against the torch module it was traced from.

:func:`parity_errors` measures the max abs error of every output on random observations (around the
normalization statistics, every eighth row far outside to exercise the clip) and, with ``sim_envs``, on
observations the embedded simulator produces while the torch module drives it (training conditions); batch of
many and batch of one; with ``predict`` (a :class:`~a1_common.bundle.BundlePolicy`) also the deterministic
action against SB3's own ``predict``. :mod:`deploy.export` calls it before a file is moved into place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th

from deploy.metadata import OUTPUT_NAMES
from deploy.policy_module import ExportablePolicy
from deploy.runner import PolicyRunner

__all__ = ["parity_errors"]


def parity_errors(
    module: ExportablePolicy,
    runner: PolicyRunner,
    obs_norm: Any,
    contract: Any,
    *,
    num_random_obs: int,
    sim_envs: int = 0,
    sim_steps: int = 0,
    seed: int = 0,
    predict: Any = None,
) -> tuple[dict[str, float], int]:
    """``({"<obs set>/<output>": max abs error}, number of simulator observations)``."""
    errors: dict[str, float] = {}
    obs_sets = {"random": _random_obs(obs_norm, num_random_obs, seed)}
    if sim_envs > 0 and sim_steps > 0:
        obs_sets["sim"] = _sim_obs(module, contract, sim_envs, sim_steps, seed)
    for name, obs in obs_sets.items():
        ours = runner.outputs(obs)
        single = [runner.outputs(row[None])["action"][0] for row in obs[:16]]
        reference = _torch_outputs(module, obs)
        for output in OUTPUT_NAMES:
            errors[f"{name}/{output}"] = _max_abs(ours[output], reference[output])
        errors[f"{name}/action_batch1"] = _max_abs(np.stack(single), reference["action"][:16])
        if predict is not None:
            sb3_raw = contract.action_bounds.to_raw(predict(obs, deterministic=True))
            errors[f"{name}/sb3_action"] = _max_abs(ours["action"], sb3_raw)
    return errors, len(obs_sets["sim"]) if "sim" in obs_sets else 0


def _torch_outputs(module: ExportablePolicy, obs: np.ndarray) -> dict[str, np.ndarray]:
    with th.inference_mode():
        values = module(th.as_tensor(obs, dtype=th.float32))
    return {name: value.detach().numpy() for name, value in zip(OUTPUT_NAMES, values, strict=True)}


def _random_obs(obs_norm: object, count: int, seed: int) -> np.ndarray:
    """Observations around the normalization statistics; every eighth row 20 std out (past any clip)."""
    rng = np.random.default_rng(seed)
    mean, std = np.asarray(obs_norm.mean), np.sqrt(np.asarray(obs_norm.var) + obs_norm.epsilon)
    scale = np.where(np.arange(count)[:, None] % 8 == 0, 20.0, 2.0)
    return (mean + scale * std * rng.standard_normal((count, len(mean)))).astype(np.float32)


def _sim_obs(module: ExportablePolicy, contract: object, num_envs: int, steps: int, seed: int) -> np.ndarray:
    """Observations the embedded simulator produces while the torch module drives it (training conditions)."""
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

    env = A1MujocoVecEnv(num_envs, contract, seed=seed, num_threads=1)
    obs = env.reset()
    recorded = []
    for _ in range(steps):
        recorded.append(obs.astype(np.float32))
        raw = _torch_outputs(module, obs)["action"]
        obs, _, _, _ = env.step(np.clip(contract.action_bounds.to_normalized(raw), -1.0, 1.0))
    env.close()
    return np.concatenate(recorded)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
