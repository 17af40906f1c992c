"""Wire schema: every message type round-trips; every kind of garbage is rejected with its reason."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from finetune.messages import Ack, Heartbeat, Hello, Lost, PolicyUpdate, ProtocolError, TransitionBatch
from finetune.protocol import PROTOCOL_VERSION, decode, encode


def make_batch(n: int = 5, first_seq: int = 10, obs_dim: int = 48, action_dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    return TransitionBatch(
        actor_id="a1-robot",
        first_seq=first_seq,
        obs=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_obs=rng.normal(size=(n, obs_dim)).astype(np.float32),
        terminated=rng.random(n) < 0.3,
        truncated=rng.random(n) < 0.3,
        policy_version=rng.integers(0, 7, size=n).astype(np.int32),
        reward_terms={"track_lin_vel": rng.normal(size=n), "torques": rng.normal(size=n)},
    )


def assert_batches_equal(a: TransitionBatch, b: TransitionBatch) -> None:
    assert (a.actor_id, a.first_seq, len(a)) == (b.actor_id, b.first_seq, len(b))
    for name in ("obs", "actions", "rewards", "next_obs", "terminated", "truncated", "policy_version"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert list(a.reward_terms) == list(b.reward_terms)
    for k in a.reward_terms:
        np.testing.assert_array_equal(a.reward_terms[k], b.reward_terms[k])


def test_batch_round_trip_and_layout():
    batch = make_batch()
    frames = encode(batch)
    assert len(frames) == 2
    header = json.loads(frames[0])
    assert header["v"] == PROTOCOL_VERSION and header["type"] == "batch" and header["n"] == 5
    # payload layout documented in PROTOCOL.md: obs first, little-endian float32, C order
    np.testing.assert_array_equal(np.frombuffer(frames[1], "<f4", count=5 * 48).reshape(5, 48), batch.obs)
    assert len(frames[1]) == 5 * 4 * (48 + 12 + 1 + 48 + 2) + 5 * 4 + 2 * 5
    decoded = decode(frames)
    assert_batches_equal(batch, decoded)
    decoded.obs[0, 0] = 99.0  # decoded arrays own their memory (no view on the zmq frame)
    np.testing.assert_array_equal(decode([bytes(f) for f in frames]).obs, batch.obs)


def test_batch_helpers():
    batch = make_batch(n=6, first_seq=100)
    np.testing.assert_array_equal(batch.seqs, np.arange(100, 106, dtype=np.uint64))
    assert batch.seqs.dtype == np.uint64
    head, tail = batch.slice(0, 2), batch.slice(2, 6)
    assert (head.first_seq, len(head), tail.first_seq, len(tail)) == (100, 2, 102, 4)
    assert_batches_equal(TransitionBatch.concat([head, tail]), batch)
    with pytest.raises(ValueError, match="not contiguous"):
        TransitionBatch.concat([tail, head])
    with pytest.raises(ValueError, match="empty slice"):
        batch.slice(3, 3)


@pytest.mark.parametrize(
    "msg",
    [
        Hello("a1-robot", 1234, "295cc1017351a9df", 3),
        Ack("a1-robot", 500, 400),
        Heartbeat("actor", "a1-robot", 1.7e9, {"submitted": 10, "note": "ok", "ratio": 0.5, "flag": True}),
        Lost("a1-robot", 10, 20),
        PolicyUpdate(version=4, n_updates=1000, contract_hash="295cc1017351a9df", onnx=b"\x08\x07onnx" * 1000),
    ],
    ids=lambda m: type(m).__name__,
)
def test_round_trip_other_messages(msg):
    frames = encode(msg)
    assert len(frames) == (2 if isinstance(msg, PolicyUpdate) else 1)
    assert decode(frames) == msg


def reason_of(frames, **kwargs) -> str:
    with pytest.raises(ProtocolError) as info:
        decode(frames, **kwargs)
    assert isinstance(info.value, ValueError)
    return info.value.reason


def with_header(frames, **changes):
    header = json.loads(frames[0])
    header.update(changes)
    return [json.dumps(header).encode(), *frames[1:]]


def nan_batch_frames() -> list[bytes]:
    header, payload = encode(make_batch())
    floats = np.frombuffer(payload, "<f4", count=5 * 48).copy()
    floats[7] = np.nan
    return [header, floats.tobytes() + payload[floats.nbytes :]]


GARBAGE = {
    "random_bytes": ([np.random.default_rng(1).bytes(300)], "malformed"),
    "not_an_object": ([b"[1, 2, 3]"], "malformed"),
    "no_frames": ([], "malformed"),
    "three_frames": ([*encode(make_batch()), b"extra"], "malformed"),
    "batch_without_payload": (encode(make_batch())[:1], "malformed"),
    "hello_with_payload": ([*encode(Hello("a", 0, "h", 0)), b"x"], "malformed"),
    "wrong_version": (with_header(encode(Ack("a", 1, 0)), v=PROTOCOL_VERSION + 1), "version"),
    "no_version": ([b'{"type": "ack", "actor_id": "a", "next_expected": 1, "committed": 0}'], "version"),
    "unknown_type": (with_header(encode(Ack("a", 1, 0)), type="reset_everything"), "unknown_type"),
    "missing_field": ([b'{"v": 1, "type": "ack", "actor_id": "a", "committed": 0}'], "malformed"),
    "bool_as_int": (with_header(encode(Ack("a", 1, 0)), next_expected=True), "malformed"),
    "negative_seq": (with_header(encode(Ack("a", 1, 0)), next_expected=-5, committed=-6), "range"),
    "committed_after_expected": (with_header(encode(Ack("a", 1, 0)), committed=2), "range"),
    "bad_actor_id": (with_header(encode(Ack("a", 1, 0)), actor_id="../../etc"), "malformed"),
    "nan_constant": (
        [b'{"v": 1, "type": "heartbeat", "role": "actor", "actor_id": "a", "time": NaN, "stats": {}}'],
        "nonfinite",
    ),
    "truncated_payload": ([encode(make_batch())[0], encode(make_batch())[1][:-7]], "shape"),
    "lying_dims": (with_header(encode(make_batch()), obs_dim=47), "shape"),
    "nan_row": (nan_batch_frames(), "nonfinite"),
    "empty_payload": (encode(make_batch())[:1] + [b""], "shape"),
    "policy_bad_hash": (with_header(encode(PolicyUpdate(1, 1, "h", b"abc")), sha256="0" * 64), "checksum"),
    "policy_truncated": ([encode(PolicyUpdate(1, 1, "h", b"abcdef"))[0], b"abc"], "shape"),
    "heartbeat_nested_stats": (
        [
            json.dumps(
                {"v": 1, "type": "heartbeat", "role": "actor", "actor_id": "a", "time": 1.0, "stats": {"x": {"y": 1}}}
            ).encode()
        ],
        "malformed",
    ),
    "huge_header": ([b"[" * 100_000 + b"]" * 100_000], "oversized"),
    "deep_json": ([b"[" * 30_000 + b"]" * 30_000], "malformed"),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_is_rejected_with_its_reason(name):
    frames, reason = GARBAGE[name]
    assert reason_of(frames) == reason


def test_oversized_and_range_checks():
    frames = encode(make_batch(n=200))
    assert reason_of(frames, max_bytes=len(frames[1])) == "oversized"
    assert isinstance(decode(frames, max_bytes=len(frames[0]) + len(frames[1])), TransitionBatch)
    # a payload whose action block holds 1.5 (outside the normalized range) and a terminated byte of 7
    batch = make_batch(n=2, obs_dim=3, action_dim=2)
    header, payload = encode(batch)
    raw = bytearray(payload)
    raw[4 * 6 : 4 * 7] = np.float32(1.5).tobytes()  # first action value (after 2x3 obs floats)
    assert reason_of([header, bytes(raw)]) == "range"
    raw = bytearray(payload)
    raw[-3] = 7  # a terminated flag that is not 0/1
    assert reason_of([header, bytes(raw)]) == "range"


def test_construction_validates():
    batch = make_batch(n=3)
    with pytest.raises(ProtocolError, match="nonfinite"):
        TransitionBatch(**{**batch.__dict__, "rewards": np.array([0.0, np.inf, 1.0])})
    with pytest.raises(ProtocolError, match="shape"):
        TransitionBatch(**{**batch.__dict__, "next_obs": batch.next_obs[:2]})
    with pytest.raises(ProtocolError, match="range"):
        TransitionBatch(**{**batch.__dict__, "actions": batch.actions * 3})
    with pytest.raises(TypeError):
        encode("not a message")


def test_policy_sha256_in_header():
    onnx = bytes(range(256)) * 400
    header = json.loads(encode(PolicyUpdate(2, 10, "h", onnx))[0])
    assert header["sha256"] == hashlib.sha256(onnx).hexdigest() and header["size"] == len(onnx)
