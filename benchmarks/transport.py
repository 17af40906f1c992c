"""Fine-tuning transport throughput and policy-update latency, through real CurveZMQ sockets on loopback.

Usage (from the repo root)::

    python benchmarks/transport.py [--transitions 100000] [--batch-size 50] [--updates 25] [--policy-kb 100]

The learner side (:class:`finetune.transport.LearnerServer`, CURVE + ZAP allowlist) runs in a child process,
like the real learner; the actor side (:class:`finetune.transport.ActorClient`) runs here with a spool in a
temporary directory, so every transition takes the whole path: ``submit`` -> I/O thread -> spool segment
(fsync + rename) -> CURVE socket -> server decode/validate -> ``SequenceTracker`` -> Ack back to the client.

* ``transitions_per_s``: ``--transitions`` transitions (obs dim 48, action dim 12, from the contract, plus the
  reward terms) submitted as fast as the loop can, divided by the time from the first ``submit`` until the
  client holds the learner's Ack for the last one. ``submit_per_s`` is the submit loop alone.
* ``policy_update_ms``: median over ``--updates`` updates of the time from the learner calling
  ``publish_policy`` (a ``--policy-kb`` payload, ONNX-sized) until ``take_policy`` returns it on the actor,
  which polls every 0.2 ms while streaming 50 transitions/s like the robot. The publish time travels inside
  the payload (``time.perf_counter_ns``, CLOCK_MONOTONIC: one clock for both processes of this machine).

Progress goes to stderr; the last stdout line is one JSON object::

    {"metric": "transitions_per_s", "value": ..., "baseline": 20000 (the target), "ratio": value / baseline,
     "policy_update_ms": ..., "targets": {...}, ...}
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

TARGETS = {"transitions_per_s": 20000, "policy_update_ms": 50}


def progress(message: str) -> None:
    print(f"[transport bench] {message}", file=sys.stderr, flush=True)


def serve(keys: str, contract_hash: str, conn) -> None:
    """Learner process: serve until told to stop; publish on request with the publish time in the payload."""
    from finetune.messages import PolicyUpdate
    from finetune.transport import LearnerServer

    server = LearnerServer(
        "tcp://127.0.0.1:*",
        Path(keys) / "learner.key_secret",
        Path(keys) / "authorized",
        contract_hash=contract_hash,
    )
    conn.send(server.endpoint)
    rows = [0]
    version = 0

    def count(batch) -> None:
        rows[0] += len(batch)

    while True:
        server.serve_once(1, count)
        if not conn.poll():
            continue
        command, arg = conn.recv()
        if command == "publish":
            version += 1
            stamp = struct.pack("<q", time.perf_counter_ns())
            reached = server.publish_policy(PolicyUpdate(version, version * 100, contract_hash, stamp + arg))
            conn.send(reached)
        elif command == "commit":
            server.tracker.commit()
            server.send_acks()
            conn.send(rows[0])
        elif command == "stop":
            conn.send({"rows": rows[0], **server.stats, **server.tracker.counters})
            server.close()
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=50, help="ActorClient batch_size (its default: 50)")
    parser.add_argument("--updates", type=int, default=25, help="policy updates timed (>= 20)")
    parser.add_argument("--policy-kb", type=int, default=100, help="policy payload size")
    args = parser.parse_args(argv)

    from a1_contract import get_contract
    from finetune.keys import generate
    from finetune.transport import ActorClient

    contract = get_contract()
    obs_dim, action_dim = contract.obs_dim, contract.num_joints
    terms = {name: 0.1 for name in contract.rewards}
    with tempfile.TemporaryDirectory(prefix="transport-bench-") as tmp:
        keys = Path(tmp) / "keys"
        generate(keys, "learner")
        generate(keys, "a1")
        (keys / "authorized").mkdir()
        (keys / "authorized" / "a1.key").write_bytes((keys / "a1.key").read_bytes())
        parent, child = mp.get_context("spawn").Pipe()
        learner = mp.get_context("spawn").Process(target=serve, args=(str(keys), contract.hash, child), daemon=True)
        learner.start()
        endpoint = parent.recv()
        progress(f"learner on {endpoint} (pid {learner.pid}); obs {obs_dim}, action {action_dim}, {len(terms)} terms")
        client = ActorClient(
            endpoint,
            keys / "a1.key_secret",
            keys / "learner.key",
            "a1",
            Path(tmp) / "spool",
            contract_hash=contract.hash,
            batch_size=args.batch_size,
            flush_s=0.05,
            heartbeat_s=0.5,
            max_in_flight=16,
        ).start()
        rng = np.random.default_rng(0)
        pool = rng.normal(size=(256, obs_dim)).astype(np.float32)
        actions = rng.uniform(-1, 1, size=(256, action_dim)).astype(np.float32)

        def stream(count: int, start: int) -> None:
            for i in range(start, start + count):
                j = i % 255
                client.submit(pool[j], actions[j], 0.5, pool[j + 1], False, i % 1000 == 999, 0, terms)

        stream(2000, 0)  # warm up: connect, handshake, first segments
        if not client.wait_acked(30):
            raise SystemExit(f"warm-up transitions were not acked: {client.stats}")
        progress(f"warm-up acked; streaming {args.transitions} transitions")
        start = time.perf_counter()
        stream(args.transitions, 2000)
        submitted = time.perf_counter()
        if not client.wait_acked(120):
            raise SystemExit(f"transitions were not acked in time: {client.stats}")
        done = time.perf_counter()
        rate = args.transitions / (done - start)
        progress(
            f"{rate:.0f} transitions/s end to end (submit loop alone {args.transitions / (submitted - start):.0f}/s)"
        )
        parent.send(("commit", None))
        parent.recv()
        if not client.flush(30):
            raise SystemExit(f"commit did not reach the client: {client.stats}")

        payload = rng.bytes(args.policy_kb * 1000)
        robot = threading.Event()
        offset = [2000 + args.transitions]

        def robot_rate() -> None:  # the robot's 50 Hz stream continues while policies arrive
            while not robot.wait(0.02):
                stream(1, offset[0])
                offset[0] += 1

        streamer = threading.Thread(target=robot_rate, daemon=True)
        streamer.start()
        latencies = []
        for update in range(args.updates):
            parent.send(("publish", payload))
            if parent.recv() != 1:
                raise SystemExit("the learner did not reach the actor with a policy")
            deadline = time.monotonic() + 5
            while (got := client.take_policy()) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"policy update {update + 1} did not arrive: {client.stats}")
                time.sleep(0.0002)
            received = time.perf_counter_ns()
            latencies.append((received - struct.unpack_from("<q", got.onnx)[0]) / 1e6)
            time.sleep(0.02)
        robot.set()
        streamer.join()
        progress(f"policy update latency median {np.median(latencies):.2f} ms over {len(latencies)} updates")
        client.close()
        parent.send(("stop", None))
        server_stats = parent.recv()
        learner.join(10)
    result = {
        "metric": "transitions_per_s",
        "value": round(rate, 1),
        "policy_update_ms": round(float(np.median(latencies)), 3),
        "baseline": TARGETS["transitions_per_s"],
        "ratio": round(rate / TARGETS["transitions_per_s"], 3),
        "targets": TARGETS,
        "policy_update_p90_ms": round(float(np.percentile(latencies, 90)), 3),
        "submit_per_s": round(args.transitions / (submitted - start), 1),
        "transitions": args.transitions,
        "batch_size": args.batch_size,
        "policy_bytes": len(payload) + 8,
        "updates": len(latencies),
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "curve": True,
        "client": {k: v for k, v in client.stats.items() if v},
        "server": {
            k: server_stats[k] for k in ("rows", "batches", "duplicates", "gaps", "acks_sent") if k in server_stats
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
