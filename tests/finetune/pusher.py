"""A stand-in robot for the fault tests, as its own process: an :class:`~finetune.transport.ActorClient` that
submits valid transitions at a fixed rate (the real actor's client, spool and keys; no ROS, no physics).

    python -m tests.finetune.pusher --endpoint tcp://127.0.0.1:5555 --keys K --spool S --contract-hash H \\
        [--count N] [--rate HZ]

With ``--count`` it submits N transitions, waits until the learner has checkpointed all of them and prints
``{"next_seq": ...}``; without, it submits until killed, printing the submitted count every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from a1_contract import get_contract
from finetune.transport import ActorClient


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--keys", required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--contract-hash", required=True)
    p.add_argument("--actor-id", default="a1")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--rate", type=float, default=500.0)
    args = p.parse_args()
    c = get_contract()
    keys = Path(args.keys)
    client = ActorClient(
        args.endpoint,
        keys / f"{args.actor_id}.key_secret",
        keys / "learner.key",
        args.actor_id,
        Path(args.spool),
        contract_hash=args.contract_hash,
        batch_size=20,
        flush_s=0.05,
    ).start()
    rng = np.random.default_rng()
    obs = rng.normal(0, 1, (256, c.obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, (256, c.num_joints)).astype(np.float32)
    i, t0, last_print = 0, time.monotonic(), 0.0
    while not args.count or i < args.count:
        due = int((time.monotonic() - t0) * args.rate)
        while i < due and (not args.count or i < args.count):
            k = i % 256
            client.submit(obs[k], act[k], 0.01, obs[(k + 1) % 256], False, i % 200 == 199, 0, {})
            i += 1
        if time.monotonic() - last_print > 0.2:
            last_print = time.monotonic()
            print(json.dumps({"submitted": i, **client.stats}), flush=True)
        time.sleep(0.002)
    ok = client.flush(120.0)
    client.close()  # rows still in memory go to the spool first
    next_seq = client.spool.next_seq
    print(json.dumps({"next_seq": next_seq, "flushed": ok, **client.stats}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
