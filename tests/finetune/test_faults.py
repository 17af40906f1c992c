"""Fault tests with real processes, sockets and files: a learner SIGKILLed mid-run and resumed, an actor killed
mid-run and restarted. Every transition sequence number ends up in the learner's buffer exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from a1_common.bundle import load_bundle_files
from finetune.learner_config import LearnerConfig
from finetune.pipeline import free_port, init_keys, start_learner, stop_learner
from finetune.transport import ActorClient

LEARNER_FLAGS = ["--learning-starts", "50", "--publish-every", "1000000", "--checkpoint-every-s", "1"]


def _buffer_seqs(learner_out: Path) -> np.ndarray:
    summary = json.loads((learner_out / "learner_summary.json").read_text())
    with np.load(learner_out / "checkpoints" / "latest" / "real_seqs.npz") as z:
        return np.sort(z["seq"][: summary["real_buffer"]])


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.05)


def _learner_process(tiny_bundle, tmp_path):
    """A learner process on a tiny trained bundle, with keys for actor ``a1``."""
    bundle = tiny_bundle("sac")
    keys = init_keys(tmp_path / "keys", ["a1"])
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out, log = tmp_path / "learner", tmp_path / "learner.log"
    learner = start_learner(bundle, out, keys, endpoint, LEARNER_FLAGS, log=log)
    return bundle, load_bundle_files(bundle).contract, keys, endpoint, out, log, learner


def test_learner_killed_and_resumed_loses_and_duplicates_nothing(tiny_bundle, tmp_path):
    bundle, contract, keys, endpoint, out, log, learner = _learner_process(tiny_bundle, tmp_path)
    client = ActorClient(
        endpoint,
        keys / "a1.key_secret",
        keys / "learner.key",
        "a1",
        tmp_path / "spool",
        contract_hash=contract.hash,
        batch_size=20,
        flush_s=0.05,
    ).start()
    total = 1500
    rng = np.random.default_rng(0)
    obs = rng.normal(0, 1, (total + 1, contract.obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, (total, contract.num_joints)).astype(np.float32)
    done = threading.Event()

    def push() -> None:
        for i in range(total):
            client.submit(obs[i], act[i], 0.01, obs[i + 1], False, i % 100 == 99, 0, {})
            time.sleep(0.004)
        done.set()

    pusher = threading.Thread(target=push, daemon=True)
    try:
        _wait(lambda: client.connected, 60, "the learner to answer")
        pusher.start()
        # kill it once it has checkpointed some rows and holds more that are not yet checkpointed
        _wait(lambda: client.committed > 0 and client.next_expected > client.committed, 60, "a checkpoint")
        learner.send_signal(signal.SIGKILL)
        learner.wait()
        received_before_kill = client.next_expected
        time.sleep(1.0)  # the actor keeps going while the learner is away: its spool grows
        assert not done.is_set() or client.spool.pending(client.committed) > 0
        learner = start_learner(bundle, out, keys, endpoint, ["--resume", str(out)], log=log)
        done.wait(60)
        assert client.flush(90.0), f"not everything was checkpointed after the restart: {client.stats}"
    finally:
        client.close()
        code = stop_learner(learner)
    assert code == 0, log.read_text()[-3000:]
    seqs = _buffer_seqs(out)
    np.testing.assert_array_equal(seqs, np.arange(total))  # every sequence number, exactly once
    assert client.stats["rewinds"] >= 1 or client.stats["resent"] > 0, client.stats  # the restart did resend
    assert received_before_kill > 0
    resumed_config = json.loads((out / "learner_config.json").read_text())
    assert resumed_config["learning_starts"] == 50, "resume keeps the run's settings"


def test_actor_killed_and_restarted_is_accepted_by_the_same_learner(tiny_bundle, tmp_path):
    bundle, contract, keys, endpoint, out, log, learner = _learner_process(tiny_bundle, tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "tests.finetune.pusher",
        "--endpoint",
        endpoint,
        "--keys",
        str(keys),
        "--spool",
        str(tmp_path / "spool"),
        "--contract-hash",
        contract.hash,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        actor = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        committed = 0
        for line in actor.stdout:  # run until the learner has checkpointed a few hundred of its transitions
            committed = json.loads(line).get("committed", 0)
            if committed >= 300:
                break
        actor.send_signal(signal.SIGKILL)
        actor.wait()
        assert learner.poll() is None, "the learner must survive its actor"
        restarted = subprocess.run([*cmd, "--count", "300"], capture_output=True, text=True, env=env, timeout=180)
        assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-2000:]
        final = json.loads(restarted.stdout.strip().splitlines()[-1])
    finally:
        code = stop_learner(learner)
    assert code == 0, log.read_text()[-3000:]
    summary = json.loads((out / "learner_summary.json").read_text())
    seqs = _buffer_seqs(out)
    # the restarted actor continued from its spool: one unbroken sequence, each number once
    assert final["next_seq"] >= 600
    np.testing.assert_array_equal(seqs, np.arange(final["next_seq"]))
    assert summary["real_transitions"] == final["next_seq"] and summary["updates"] > 0
    assert summary["server"].get("hellos", 0) >= 2, summary["server"]  # one learner process, two actor lives
    assert LearnerConfig().learning_starts != 50  # the flags above were not the defaults
