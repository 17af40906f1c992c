"""Transport on real CurveZMQ sockets on 127.0.0.1 (random free ports) with real spool files in tmp_path."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from a1_contract import get_contract
from finetune.keys import generate
from finetune.messages import Ack, Heartbeat, Hello, PolicyUpdate
from finetune.protocol import decode, encode
from finetune.transport import ActorClient, LearnerServer, SequenceTracker
from tests.finetune.test_protocol import make_batch

CONTRACT = get_contract().hash
OBS_DIM, ACTION_DIM = get_contract().obs_dim, get_contract().num_joints
FAST = {"batch_size": 16, "flush_s": 0.02, "heartbeat_s": 0.05, "learner_timeout_s": 0.5}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@dataclass
class Keys:
    server_public: Path
    server_secret: Path
    allowed: Path  # public keys of the admitted actors
    secrets: dict[str, Path]  # actor key name -> secret file

    def client(self, name: str) -> Path:
        return self.secrets[name]


@pytest.fixture
def keys(tmp_path) -> Keys:
    server_public, server_secret = generate(tmp_path / "learner", "learner")
    secrets = {}
    for name in ("robot1", "robot2", "intruder"):
        public, secret = generate(tmp_path / "actors", name)
        secrets[name] = secret
        if name != "intruder":
            (tmp_path / "allowed").mkdir(exist_ok=True)
            (tmp_path / "allowed" / public.name).write_bytes(public.read_bytes())
    return Keys(server_public, server_secret, tmp_path / "allowed", secrets)


class Learner:
    """A LearnerServer driven by its own thread, like the learner's loop; ``call`` runs code on that thread."""

    def __init__(self, keys: Keys, endpoint: str = "tcp://127.0.0.1:*", **kwargs) -> None:
        self.server = LearnerServer(endpoint, keys.server_secret, keys.allowed, contract_hash=CONTRACT, **kwargs)
        self.batches = []
        self._calls: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.server.serve_once(5, self.batches.append)
            while not self._calls.empty():
                fn, reply = self._calls.get()
                reply.put(fn(self.server))

    def call(self, fn):
        reply: queue.Queue = queue.Queue()
        self._calls.put((fn, reply))
        return reply.get(timeout=5)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.fixture
def learner(keys):
    learner = Learner(keys)
    yield learner
    learner.close()


def client(keys: Keys, endpoint: str, spool: Path, actor_id: str = "robot1", key: str = "robot1", **kwargs):
    options = {**FAST, "contract_hash": CONTRACT, **kwargs}
    return ActorClient(endpoint, keys.client(key), keys.server_public, actor_id, spool, **options).start()


def submit(actor: ActorClient, count: int, base: int) -> None:
    """``count`` transitions whose obs[0] is their seq (``base + i``), so row content can be checked against seq."""
    for i in range(count):
        obs = np.full(OBS_DIM, float(base + i), np.float32)
        action = np.linspace(-1, 1, ACTION_DIM)
        seq = actor.submit(obs, action, 1.0, obs + 1, i % 50 == 49, False, 0, {"alive": 1.0})
        assert seq == base + i


def assert_exactly_once(batches: list, n: int, actor_id: str = "robot1") -> None:
    batches = [b for b in batches if b.actor_id == actor_id]
    seqs = np.concatenate([b.seqs for b in batches])
    assert len(seqs) == n, f"received {len(seqs)} rows for {n} transitions"
    np.testing.assert_array_equal(np.sort(seqs), np.arange(n, dtype=np.uint64))
    for batch in batches:  # each row arrived with its own content
        np.testing.assert_array_equal(batch.obs[:, 0], batch.seqs.astype(np.float32))


def test_tracker_exactly_once_bookkeeping():
    tracker = SequenceTracker()
    assert tracker.accept(make_batch(n=5, first_seq=0)).first_seq == 0
    assert tracker.accept(make_batch(n=5, first_seq=0)) is None and tracker.duplicates == 5
    fresh = tracker.accept(make_batch(n=5, first_seq=3))  # overlaps: only seqs 5-7 are new
    assert (fresh.first_seq, len(fresh), tracker.duplicates) == (5, 3, 7)
    assert tracker.accept(make_batch(n=2, first_seq=20)) is None and tracker.gaps == 1
    assert tracker.ack("a1-robot") == Ack("a1-robot", 8, 0)
    tracker.commit()
    assert tracker.ack("a1-robot") == Ack("a1-robot", 8, 8) and tracker.ack("nobody") == Ack("nobody", 0, 0)
    assert tracker.skip("a1-robot", 8, 12) == 4 and tracker.ack("a1-robot").next_expected == 12
    tracker.accept(make_batch(n=3, first_seq=12))
    restored = SequenceTracker.from_state_dict(tracker.state_dict())
    assert restored.ack("a1-robot") == Ack("a1-robot", 15, 15) and restored.counters == tracker.counters


def test_stream_arrives_exactly_once_and_spool_is_pruned(keys, learner, tmp_path):
    n = 600
    with client(keys, learner.server.endpoint, tmp_path / "spool") as actor:
        submit(actor, n, base=0)
        assert actor.wait_acked(10), actor.stats
        assert actor.spool.pending(0) == n  # acked is not committed: nothing pruned yet
        learner.call(lambda s: (s.tracker.commit(), s.send_acks()))
        assert actor.flush(5), actor.stats
        wait_for(lambda: actor.spool.pending(0) == 0, what="prune")
        assert actor.connected and actor.committed == n
        assert actor.stats["sent"] == n and actor.stats["spooled"] == n and actor.stats["pruned"] == n
    assert_exactly_once(learner.batches, n)
    assert learner.server.stats["rows"] == n and learner.server.tracker.ack("robot1") == Ack("robot1", n, n)


def test_restarted_learner_gets_missing_rows_exactly_once(keys, tmp_path):
    first = Learner(keys)
    endpoint = first.server.endpoint
    with client(keys, endpoint, tmp_path / "spool") as actor:
        submit(actor, 200, base=0)
        assert actor.wait_acked(10)
        checkpoint = first.call(lambda s: (s.tracker.commit(), s.send_acks(), s.tracker.state_dict())[2])
        submit(actor, 200, base=200)
        assert actor.wait_acked(10)
        first.close()  # the learner crashes: rows 200-399 lived only in its memory
        before_restart = [b for b in first.batches if b.first_seq < 200]
        submit(actor, 100, base=400)  # spooled while nobody listens
        second = Learner(keys, endpoint, tracker=SequenceTracker.from_state_dict(checkpoint))
        try:
            assert actor.wait_acked(10), actor.stats
            resent = np.concatenate([b.seqs for b in second.batches])
            np.testing.assert_array_equal(resent, np.arange(200, 500, dtype=np.uint64))  # once each, in order
            assert_exactly_once(before_restart + second.batches, 500)
            assert actor.stats["rewinds"] >= 1 and actor.stats["resent"] >= 200
            assert actor.spool.first_seq == 200  # committed rows were pruned, the rest kept until committed
        finally:
            second.close()


def test_restarted_actor_sends_what_it_spooled(keys, learner, tmp_path):
    offline = client(keys, "tcp://127.0.0.1:9", tmp_path / "spool")  # nothing listens there
    submit(offline, 40, base=0)
    offline.close()  # close() flushes memory to the spool
    assert not offline.connected and offline.spool.pending(0) == 40
    with client(keys, learner.server.endpoint, tmp_path / "spool") as actor:
        submit(actor, 10, base=40)  # the sequence continues from the spool
        assert actor.wait_acked(10)
    assert_exactly_once(learner.batches, 50)


def test_unlisted_key_can_neither_push_nor_receive(keys, learner, tmp_path):
    policy = PolicyUpdate(1, 100, CONTRACT, b"onnx" * 100)
    with client(keys, learner.server.endpoint, tmp_path / "spool", key="intruder") as intruder:
        submit(intruder, 30, base=0)
        wait_for(lambda: learner.server.stats.get("handshake_failed_auth", 0) >= 1, what="ZAP refusal")
        assert learner.call(lambda s: s.publish_policy(policy)) == 0
        wait_for(lambda: intruder.stats.get("handshake_failed_auth", 0) >= 1, what="client-side refusal")
        assert intruder.take_policy() is None and not intruder.connected and intruder.next_expected == 0
    assert learner.batches == [] and learner.server.tracker.next_expected == {}
    assert learner.server.stats["messages"] == 0
    # wrong learner key on the client side: the handshake fails, nothing is delivered either
    wrong_server = generate(tmp_path / "other", "fake-learner")[0]
    options = {**FAST, "contract_hash": CONTRACT}
    with ActorClient(
        learner.server.endpoint, keys.client("robot1"), wrong_server, "robot1", tmp_path / "s2", **options
    ):
        wait_for(lambda: learner.server.stats.get("handshake_failed_protocol", 0) >= 1, what="protocol failure")
    assert learner.server.tracker.next_expected == {}


def raw_dealer(keys: Keys, endpoint: str, key: str) -> zmq.Socket:
    public, secret = zmq.auth.load_certificate(keys.client(key))
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = zmq.auth.load_certificate(keys.server_public)[0]
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def reply(sock: zmq.Socket, timeout_ms: int = 3000):
    assert sock.poll(timeout_ms), "no reply from the learner"
    return decode(sock.recv_multipart())


def test_garbage_from_an_allowed_client_is_counted_and_ignored(keys, tmp_path):
    learner = Learner(keys, max_message_bytes=64 << 10)
    sock = raw_dealer(keys, learner.server.endpoint, "robot1")
    try:
        good = make_batch(n=4, first_seq=0, obs_dim=OBS_DIM, action_dim=ACTION_DIM)
        good = good.__class__(**{**good.__dict__, "actor_id": "robot1"})
        header, payload = encode(good)
        nan_payload = bytearray(payload)
        nan_payload[:4] = np.float32(np.nan).tobytes()
        garbage = [
            [np.random.default_rng(0).bytes(100)],
            [header, payload, b"third frame"],
            [header.replace(b'"v":1', b'"v":2'), payload],
            [header, payload[:-5]],
            [header, bytes(nan_payload)],
            [header.replace(b'"batch"', b'"exec"'), payload],
            [b"x" * 40_000, b"y" * 40_000],  # each frame under MAXMSGSIZE, together over the limit
        ]
        for frames in garbage:
            sock.send_multipart(frames)
        sock.send_multipart(encode(good))  # well formed, but no Hello yet: refused, and told to say Hello
        assert reply(sock).stats == {"hello_required": True}
        expected = {"malformed": 2, "version": 1, "shape": 1, "nonfinite": 1, "unknown_type": 1, "oversized": 1}
        for reason, count in expected.items():
            assert learner.server.stats.get(f"rejected_{reason}") == count, (reason, learner.server.stats)
        assert learner.server.stats["rejected_no_hello"] == 1
        assert learner.batches == [] and learner.server.tracker.next_expected == {}
        sock.send_multipart([b"z" * (65 << 10)])  # over MAXMSGSIZE: libzmq drops the connection
        wait_for(lambda: learner.server.stats.get("disconnects", 0) >= 1, what="disconnect")
        # the learner is unharmed: a proper client still gets through (the raw socket reconnects)
        sock.send_multipart(encode(Hello("robot1", 4, CONTRACT, 0)))
        assert reply(sock) == Ack("robot1", 0, 0)
        sock.send_multipart(encode(good))
        assert reply(sock) == Ack("robot1", 4, 0)
        assert learner.server.stats["rows"] == 4
    finally:
        sock.close(linger=0)
        learner.close()


def test_actor_id_is_bound_to_its_first_key(keys, learner):
    first, second = (raw_dealer(keys, learner.server.endpoint, k) for k in ("robot1", "robot2"))
    try:
        first.send_multipart(encode(Hello("robot1", 0, CONTRACT, 0)))
        assert reply(first) == Ack("robot1", 0, 0)
        second.send_multipart(encode(Hello("robot1", 0, CONTRACT, 0)))  # robot2's key claims robot1's id
        second.send_multipart(encode(Hello("robot2", 0, "another-contract", 0)))  # and a wrong contract
        refusal = reply(second)
        assert isinstance(refusal, Heartbeat) and refusal.stats["refused"] == "contract_hash"
        assert learner.server.stats["rejected_actor_key"] == 1 and learner.server.stats["rejected_contract"] == 1
        assert learner.server.tracker.keys == {"robot1": zmq.auth.load_certificate(keys.client("robot1"))[0].decode()}
    finally:
        first.close(linger=0)
        second.close(linger=0)


def test_policy_reaches_actor_and_stale_hello_gets_latest(keys, learner, tmp_path):
    onnx = np.random.default_rng(0).bytes(100_000)
    with client(keys, learner.server.endpoint, tmp_path / "s1") as actor:
        wait_for(lambda: actor.connected and learner.server.stats.get("hellos", 0) >= 1, what="hello")
        assert learner.call(lambda s: s.publish_policy(PolicyUpdate(1, 500, CONTRACT, onnx))) == 1
        wait_for(lambda: actor.stats["policies_received"] == 1, what="policy v1")
        update = actor.take_policy()
        assert (update.version, update.n_updates, update.onnx) == (1, 500, onnx)
        assert actor.take_policy() is None  # taken once
        learner.call(lambda s: s.publish_policy(PolicyUpdate(2, 900, CONTRACT, onnx[::-1])))
        learner.call(lambda s: s.publish_policy(PolicyUpdate(3, 990, CONTRACT, onnx[:500])))
        wait_for(lambda: actor.stats["policies_received"] == 3, what="policies v2, v3")
        assert actor.take_policy().version == 3  # latest wins
    # a late actor running the pretrained policy (version 0) gets v3 with its Hello's answer
    with client(keys, learner.server.endpoint, tmp_path / "s2", actor_id="robot2", key="robot2") as late:
        wait_for(lambda: late.stats["policies_received"] == 1, what="policy on hello")
        assert late.take_policy().onnx == onnx[:500]
    # an actor that already runs v3 gets nothing: wait until it received a reply sent after its Hello's answer
    current = ActorClient(
        learner.server.endpoint,
        keys.client("robot2"),
        keys.server_public,
        "robot1b",
        tmp_path / "s3",
        contract_hash=CONTRACT,
        **FAST,
    )
    current.set_policy_version(3)
    with current:
        beats = learner.server.stats.get("heartbeats", 0)
        wait_for(lambda: learner.server.stats.get("heartbeats", 0) >= beats + 2, what="heartbeats after hello")
        replied = time.monotonic()
        wait_for(lambda: current._last_rx > replied, what="a reply received after that")
        assert current.take_policy() is None and current.stats["policies_received"] == 0
    with pytest.raises(RuntimeError, match="closed"):
        current.start()


def test_actor_counts_and_ignores_garbage_from_the_learner(keys, tmp_path):
    """A fake learner (CURVE server with the learner's key, no ZAP) sends the actor junk and one good Ack."""
    public, secret = zmq.auth.load_certificate(keys.server_secret)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.curve_server = True
    router.curve_publickey, router.curve_secretkey = public, secret
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        with client(keys, f"tcp://127.0.0.1:{port}", tmp_path / "spool") as actor:
            submit(actor, 5, base=0)
            assert router.poll(3000)
            routing, *frames = router.recv_multipart()
            assert isinstance(decode(frames), Hello)
            bad_policy = encode(PolicyUpdate(1, 1, CONTRACT, b"onnx"))
            bad_policy[0] = bad_policy[0].replace(b'"sha256":"', b'"sha256":"0')[:-2] + b'"}'
            junk = [
                [b"\xff\x00garbage"],
                encode(Ack("robot1", 1, 0))[0].replace(b'"v":1', b'"v":9'),
                bad_policy,
                encode(PolicyUpdate(1, 1, "other-contract", b"onnx")),
                encode(Ack("someone-else", 3, 0)),
            ]
            for frames in junk:
                router.send_multipart([routing, *(frames if isinstance(frames, list) else [frames])])
            router.send_multipart([routing, *encode(Ack("robot1", 5, 5))])
            wait_for(lambda: actor.committed == 5, what="the good ack")
            for key in ("rejected_malformed", "rejected_version", "rejected_checksum", "rejected_contract"):
                assert actor.stats.get(key) == 1, (key, actor.stats)
            assert actor.stats["rejected_actor"] == 1 and actor.take_policy() is None
    finally:
        router.close(linger=0)
        ctx.term()


def test_submit_rejects_bad_transitions_without_raising(keys, tmp_path):
    actor = ActorClient(
        "tcp://127.0.0.1:9", keys.client("robot1"), keys.server_public, "robot1", tmp_path / "s", contract_hash=CONTRACT
    )
    obs = np.zeros(OBS_DIM)
    assert actor.submit(obs, np.zeros(ACTION_DIM), 0.0, obs, False, False, 0) == 0
    assert actor.submit(obs * np.nan, np.zeros(ACTION_DIM), 0.0, obs, False, False, 0) == -1
    assert actor.submit(obs, np.full(ACTION_DIM, 2.0), 0.0, obs, False, False, 0) == -1
    assert actor.submit(obs[:10], np.zeros(ACTION_DIM), 0.0, obs, False, False, 0) == -1
    assert actor.submit(obs, np.zeros(ACTION_DIM), 0.0, obs, False, False, 0) == 1
    assert {k: actor.stats[k] for k in ("rejected_nonfinite", "rejected_range", "rejected_shape")} == dict.fromkeys(
        ("rejected_nonfinite", "rejected_range", "rejected_shape"), 1
    )
    actor.close()
    assert actor.spool.pending(0) == 2


def test_rows_lost_in_a_corrupt_spool_segment_are_declared_not_waited_for(keys, learner, tmp_path):
    offline = client(keys, "tcp://127.0.0.1:9", tmp_path / "spool", batch_size=10, flush_s=10)
    for start in (0, 10, 20):  # three segments of 10 rows
        submit(offline, 10, base=start)
        wait_for(lambda start=start: offline.stats["spooled"] == start + 10, what="spooled")
    offline.close()
    middle = sorted((tmp_path / "spool").glob("*.seg"))[1]
    middle.write_bytes(middle.read_bytes()[:100])  # a disk fault truncates seqs 10-19
    with client(keys, learner.server.endpoint, tmp_path / "spool") as actor:
        assert actor.spool.stats["corrupt"] == 1
        submit(actor, 5, base=30)
        assert actor.wait_acked(10), actor.stats
        assert actor.stats["lost_declared"] == 10
    seqs = np.concatenate([b.seqs for b in learner.batches])
    np.testing.assert_array_equal(seqs, np.r_[0:10, 20:35].astype(np.uint64))
    assert learner.server.tracker.counters["lost"] == 10 and learner.server.stats["lost_rows"] == 10


def test_keys_cli_writes_a_private_secret_and_refuses_to_overwrite(tmp_path, capsys):
    from finetune.keys import main

    assert main(["--out", str(tmp_path / "k"), "--name", "robot7"]) == 0
    public, secret = zmq.auth.load_certificate(tmp_path / "k" / "robot7.key_secret")
    assert len(public) == len(secret) == 40
    assert zmq.auth.load_certificate(tmp_path / "k" / "robot7.key") == (public, None)
    assert (tmp_path / "k" / "robot7.key_secret").stat().st_mode & 0o777 == 0o600
    assert main(["--out", str(tmp_path / "k"), "--name", "robot7"]) == 1 and "refusing" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "k"), "--name", "robot7", "--force"]) == 0
    assert zmq.auth.load_certificate(tmp_path / "k" / "robot7.key")[0] != public
