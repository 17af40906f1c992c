"""Fine-tuning end to end: the emulated A1 (with a dynamics gap) + the policy node in fine-tuning mode over real
rclpy, the learner as its own process from the reference bundle, real CurveZMQ sockets on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from finetune.emulated import actor_params, run_actor
from finetune.pipeline import DEFAULT_GAP, LENIENT_SAFETY, free_port, init_keys, start_learner, stop_learner
from pretrain.reference import REFERENCE_BUNDLE


@pytest.fixture(scope="module")
def reference_policy(tmp_path_factory) -> Path:
    from deploy.export import export_policy

    out = tmp_path_factory.mktemp("finetune_reference") / "policy.onnx"
    export_policy(REFERENCE_BUNDLE, out, sim_envs=2, sim_steps=50, num_random_obs=256)
    return out


def _wait_for_file(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s} s"
        time.sleep(0.1)


def test_transitions_flow_and_a_new_policy_is_used(reference_policy, tmp_path):
    keys = init_keys(tmp_path / "keys", ["a1"])
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    learner_out = tmp_path / "learner"
    learner = start_learner(
        REFERENCE_BUNDLE,
        learner_out,
        keys,
        endpoint,
        [
            "--learning-starts",
            "100",
            "--publish-every",
            "40",
            "--checkpoint-every-s",
            "3",
            "--utd",
            "1",
            "--sim-fill",
            "2000",
            "--critic-warmup",
            "20",
        ],
        log=tmp_path / "learner.log",
    )
    try:
        _wait_for_file(learner_out / "learner_config.json", 60.0)
        params = actor_params(learner_endpoint=endpoint, keys_dir=keys, work_dir=tmp_path / "actor", episode_steps=150)
        # until the actor has run the learner's policy for 50 control ticks (1 s)
        record = run_actor(
            reference_policy,
            command=(0.5, 0.0, 0.0),
            gap=DEFAULT_GAP,
            params=params,
            safety_params=LENIENT_SAFETY,
            until=lambda node: sum(n for v, n in node.loop.stats.transitions_by_version.items() if v >= 1) >= 50,
            timeout_s=60.0,
            drain_s=30.0,
        )
    finally:
        code = stop_learner(learner)
    log = (tmp_path / "learner.log").read_text()
    assert code == 0, log[-3000:]
    assert record["stop_reason"] == "until", (record["stop_reason"], log[-2000:])
    assert record["drained"] is True, f"not every transition was checkpointed: {record['transport']}"
    assert record["policy_swaps"] >= 1 and record["policy_version"] >= 1
    assert (tmp_path / "actor" / "policies" / "policy_v00001.onnx").is_file(), "received policies are kept"
    sent = record["transitions"]
    assert sent >= 150 and record["episodes"] >= 1  # 150-step episodes: at least one ended

    summary = json.loads((learner_out / "learner_summary.json").read_text())
    assert summary["real_transitions"] == sent, (summary, record["transport"])
    assert summary["updates"] > 0 and summary["policy_version"] >= 1
    latest = learner_out / "checkpoints" / "latest"
    assert (latest / "meta.json").is_file() and (latest / "model.zip").is_file()
    with np.load(latest / "real_seqs.npz") as z:
        seqs = np.sort(z["seq"][: summary["real_buffer"]])
    np.testing.assert_array_equal(seqs, np.arange(sent))  # the buffer grew by exactly what was sent, once each
    assert summary["server"].get("rejected_malformed", 0) == 0
