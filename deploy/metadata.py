"""What an exported policy file says about itself: the ONNX ``metadata_props`` keys, in one place.

Every value is a string (ONNX stores string pairs); structured values are JSON. The export writes
them (:func:`build_metadata`), the runner reads them back through onnxruntime alone, so a robot can
inspect a policy without torch or the ``onnx`` package::

    format               "a1_sim2real.policy"
    format_version       "1" (bumped when keys, inputs or outputs change meaning)
    contract             the task contract JSON (``a1_contract``; its own hash inside)
    contract_hash        the contract's hash, repeated so a reader can check it without parsing
    algo                 "sac" | "tqc" | "ppo"
    squash               "tanh" (SAC/TQC: action = tanh(mean)) | "clip" (PPO: action = clip(mean, -1, 1))
    action_bounds        {"low": [...], "high": [...], "method": ...}: raw = low + (a + 1) / 2 * (high - low)
    obs_norm             {"mean", "var", "count", "clip_obs" (null = no clip), "epsilon"}, folded into the graph
    policy_rate_hz       control rate the policy was trained at
    obs_dim, action_dim  sizes of the ``obs`` input and of each output's last axis
    inputs, outputs      ["obs"], ["action", "mean", "log_std"]
    log_std_range        [min, max] the actor clamps its log std to (PPO: null, state-independent)
    versions             package versions at export time
    source_bundle_id     ``meta.json`` bundle id of the checkpoint it came from (and source_num_timesteps,
                         source_git_commit)
    exported             UTC time of the export
"""

from __future__ import annotations

import json
import math
import platform
import time
from importlib import metadata as importlib_metadata
from typing import Any

FORMAT = "a1_sim2real.policy"
FORMAT_VERSION = 1
INPUT_NAME = "obs"
OUTPUT_NAMES = ("action", "mean", "log_std")
SQUASH_BY_ALGO = {"sac": "tanh", "tqc": "tanh", "ppo": "clip"}
REQUIRED_KEYS = (
    "format",
    "format_version",
    "contract",
    "contract_hash",
    "algo",
    "squash",
    "action_bounds",
    "obs_norm",
    "policy_rate_hz",
    "obs_dim",
    "action_dim",
    "inputs",
    "outputs",
)
_VERSIONED = ("a1-sim2real", "torch", "stable-baselines3", "sb3-contrib", "onnx", "onnxruntime", "numpy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def build_metadata(
    *,
    contract: Any,
    algo: str,
    obs_norm: Any,
    log_std_range: tuple[float, float] | None,
    source_meta: dict[str, Any],
) -> dict[str, str]:
    """The ``metadata_props`` of a policy file (``contract``: a ``TaskContract``, ``obs_norm``: an ``ObsNorm``)."""
    bounds = contract.action_bounds
    clip_obs = float(obs_norm.clip_obs)
    values: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "contract": contract.to_json(indent=None),
        "contract_hash": contract.hash,
        "algo": algo,
        "squash": SQUASH_BY_ALGO[algo],
        "action_bounds": {"low": list(bounds.low), "high": list(bounds.high), "method": bounds.method},
        "obs_norm": {
            "mean": [float(v) for v in obs_norm.mean],
            "var": [float(v) for v in obs_norm.var],
            "count": float(obs_norm.count),
            "clip_obs": clip_obs if math.isfinite(clip_obs) else None,
            "epsilon": float(obs_norm.epsilon),
        },
        "policy_rate_hz": contract.policy_rate_hz,
        "obs_dim": contract.obs_dim,
        "action_dim": contract.num_joints,
        "inputs": [INPUT_NAME],
        "outputs": list(OUTPUT_NAMES),
        "log_std_range": None if log_std_range is None else list(log_std_range),
        "versions": package_versions(),
        "source_bundle_id": str(source_meta.get("bundle_id", "unknown")),
        "source_num_timesteps": int(source_meta.get("num_timesteps", 0)),
        "source_git_commit": str(source_meta.get("git_commit", "unknown")),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
