"""Fine-tuning tests: tiny trained bundles (real SB3, real MuJoCo) and helpers to build real transition batches.

ROS tests here get the same per-process DDS domain as tests/robot_bridge (set before rclpy is imported)."""

from __future__ import annotations

import os

os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np  # noqa: E402

from a1_contract import TaskContract  # noqa: E402
from finetune.messages import TransitionBatch  # noqa: E402
from tests.deploy.conftest import tiny_bundle  # noqa: E402, F401  (a fixture)


def make_batch(
    contract: TaskContract, actor: str, first_seq: int, n: int, seed: int = 0, ends: dict[int, str] | None = None
) -> TransitionBatch:
    """``n`` transitions with plausible values; ``ends``: row -> "fall" (terminated) or "timeout" (truncated)."""
    rng = np.random.default_rng(seed + first_seq)
    terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
    for row, kind in (ends or {}).items():
        (terminated if kind == "fall" else truncated)[row] = True
    return TransitionBatch(
        actor_id=actor,
        first_seq=first_seq,
        obs=rng.normal(0, 1, (n, contract.obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, contract.num_joints)).astype(np.float32),
        rewards=rng.normal(0, 0.05, n).astype(np.float32),
        next_obs=rng.normal(0, 1, (n, contract.obs_dim)).astype(np.float32),
        terminated=terminated,
        truncated=truncated,
        policy_version=np.zeros(n, np.int32),
        reward_terms={},
    )
