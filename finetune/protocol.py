"""Wire format of the fine-tuning transport (actor on the robot <-> learner on the workstation): encode, decode.

Every message is a list of zmq frames: ``[JSON header]`` or ``[JSON header, binary payload]``. The header
carries ``"v"`` (:data:`PROTOCOL_VERSION`) and ``"type"``; payloads are raw little-endian numpy buffers (a
transition batch) or the ONNX file bytes (a policy update). No pickle anywhere: :func:`decode` only parses
JSON and reads fixed-dtype buffers, and it validates every field, so bytes from the network can at worst be
rejected with a :class:`~finetune.messages.ProtocolError` whose ``reason`` is a short counter key.
``finetune/PROTOCOL.md`` documents the frames, fields and layout; this module is the implementation
(``encode`` / ``decode``), the message types are in :mod:`finetune.messages`.

Run the tests: ``.venv/bin/python -m pytest tests/finetune/test_protocol.py -q``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from finetune.messages import (
    MAX_DIM,
    Ack,
    Heartbeat,
    Hello,
    Lost,
    Message,
    PolicyUpdate,
    ProtocolError,
    TransitionBatch,
    check_actor_id,
    check_int,
)

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 << 10
_FLOAT = np.dtype("<f4")
_INT = np.dtype("<i4")
_BOOL = np.dtype("u1")

_TYPES = {
    TransitionBatch: "batch",
    Hello: "hello",
    Ack: "ack",
    PolicyUpdate: "policy",
    Heartbeat: "heartbeat",
    Lost: "lost",
}


def _dumps(header: dict) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode()


def encode(msg: Message) -> list[bytes]:
    """Multipart frames for ``msg``: ``[JSON header]`` or ``[JSON header, binary payload]``."""
    kind = _TYPES.get(type(msg))
    if kind is None:
        raise TypeError(f"cannot encode {type(msg).__name__}")
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": kind}
    if isinstance(msg, TransitionBatch):
        names = list(msg.reward_terms)
        header.update(
            actor_id=msg.actor_id,
            first_seq=msg.first_seq,
            n=len(msg),
            obs_dim=msg.obs.shape[1],
            action_dim=msg.actions.shape[1],
            reward_terms=names,
        )
        # 4-byte types first so every block is aligned; order is part of the schema (PROTOCOL.md).
        parts = [msg.obs.astype(_FLOAT), msg.actions.astype(_FLOAT), msg.rewards.astype(_FLOAT)]
        parts += [msg.next_obs.astype(_FLOAT)] + [msg.reward_terms[k].astype(_FLOAT) for k in names]
        parts += [msg.policy_version.astype(_INT), msg.terminated.astype(_BOOL), msg.truncated.astype(_BOOL)]
        return [_dumps(header), b"".join(p.tobytes() for p in parts)]
    if isinstance(msg, PolicyUpdate):
        onnx = bytes(msg.onnx)
        header.update(
            version=msg.version,
            n_updates=msg.n_updates,
            contract_hash=msg.contract_hash,
            size=len(onnx),
            sha256=hashlib.sha256(onnx).hexdigest(),
        )
        return [_dumps(header), onnx]
    header.update(msg.__dict__)
    return [_dumps(header)]


def _reject_constant(name: str) -> float:
    raise ProtocolError("nonfinite", f"JSON constant {name} is not allowed")


def _field(header: dict, name: str, kind: type) -> Any:
    if name not in header:
        raise ProtocolError("malformed", f"{header.get('type')} header lacks field {name!r}")
    value = header[name]
    if kind is int:
        return check_int(name, value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError("malformed", f"{name} must be a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, kind):
        raise ProtocolError("malformed", f"{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _short_str(name: str, value: str, limit: int = 128) -> str:
    if len(value) > limit:
        raise ProtocolError("malformed", f"{name} longer than {limit} characters")
    return value


def _decode_batch(header: dict, payload: bytes | None) -> TransitionBatch:
    actor_id = check_actor_id(_field(header, "actor_id", str))
    first_seq = _field(header, "first_seq", int)
    n = _field(header, "n", int)
    obs_dim = _field(header, "obs_dim", int)
    action_dim = _field(header, "action_dim", int)
    names = _field(header, "reward_terms", list)
    if not all(isinstance(k, str) for k in names) or len(set(names)) != len(names) or len(names) > 256:
        raise ProtocolError("malformed", "reward_terms must be a list of distinct names (at most 256)")
    if n < 1 or not 1 <= obs_dim <= MAX_DIM or not 1 <= action_dim <= MAX_DIM:
        raise ProtocolError("shape", f"bad batch dims n={n} obs_dim={obs_dim} action_dim={action_dim}")
    if payload is None:
        raise ProtocolError("malformed", "batch message needs 2 frames (header, payload), got 1")
    floats = n * (2 * obs_dim + action_dim + 1 + len(names))
    expected = 4 * floats + 4 * n + 2 * n
    if len(payload) != expected:
        raise ProtocolError("shape", f"batch payload is {len(payload)} bytes, header implies {expected}")
    buffer = bytearray(payload)  # one copy: the arrays own writable memory independent of the zmq frame
    offset = 0

    def take(count: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        nonlocal offset
        out = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += count * dtype.itemsize
        return out

    obs = take(n * obs_dim, _FLOAT, (n, obs_dim))
    actions = take(n * action_dim, _FLOAT, (n, action_dim))
    rewards = take(n, _FLOAT, (n,))
    next_obs = take(n * obs_dim, _FLOAT, (n, obs_dim))
    terms = {k: take(n, _FLOAT, (n,)) for k in names}
    policy_version = take(n, _INT, (n,))
    terminated = take(n, _BOOL, (n,))
    truncated = take(n, _BOOL, (n,))
    if terminated.max() > 1 or truncated.max() > 1:
        raise ProtocolError("range", "terminated/truncated bytes must be 0 or 1")
    return TransitionBatch(
        actor_id=actor_id,
        first_seq=first_seq,
        obs=obs,
        actions=actions,
        rewards=rewards,
        next_obs=next_obs,
        terminated=terminated.view(np.bool_),
        truncated=truncated.view(np.bool_),
        policy_version=policy_version,
        reward_terms=terms,
    )


def _decode_policy(header: dict, payload: bytes | None) -> PolicyUpdate:
    version = _field(header, "version", int)
    n_updates = _field(header, "n_updates", int)
    contract_hash = _short_str("contract_hash", _field(header, "contract_hash", str))
    size = _field(header, "size", int)
    digest = _field(header, "sha256", str)
    if payload is None:
        raise ProtocolError("malformed", "policy message needs 2 frames (header, onnx), got 1")
    if len(payload) != size:
        raise ProtocolError("shape", f"policy payload is {len(payload)} bytes, header says {size}")
    onnx = bytes(payload)
    if hashlib.sha256(onnx).hexdigest() != digest:
        raise ProtocolError("checksum", "policy sha256 does not match the header")
    return PolicyUpdate(version=version, n_updates=n_updates, contract_hash=contract_hash, onnx=onnx)


def _decode_stats(stats: dict) -> dict:
    if len(stats) > 256:
        raise ProtocolError("malformed", "heartbeat stats has more than 256 entries")
    for key, value in stats.items():
        if not isinstance(value, (int, float, str, bool)) or (isinstance(value, str) and len(value) > 256):
            raise ProtocolError("malformed", f"heartbeat stat {key!r} must be a scalar, got {type(value).__name__}")
    return stats


def decode(frames: list[bytes], *, max_bytes: int = 8 << 20) -> Message:
    """Parse and validate one message; raises :class:`ProtocolError` (and nothing else) on any defect."""
    try:
        return _decode(frames, max_bytes)
    except ProtocolError:
        raise
    except Exception as err:  # noqa: BLE001 - the contract: bytes from the network never raise anything else
        raise ProtocolError("malformed", f"{type(err).__name__}: {err}") from None


def _decode(frames: list[bytes], max_bytes: int) -> Message:
    if not isinstance(frames, (list, tuple)) or not 1 <= len(frames) <= 2:
        count = len(frames) if isinstance(frames, (list, tuple)) else "?"
        raise ProtocolError("malformed", f"expected 1 or 2 frames, got {count}")
    total = sum(len(f) for f in frames)
    if total > max_bytes:
        raise ProtocolError("oversized", f"message is {total} bytes, limit {max_bytes}")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise ProtocolError("oversized", f"header is {len(frames[0])} bytes, limit {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(frames[0]), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError("malformed", f"header is not JSON: {err}") from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed", "header must be a JSON object")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {header.get('v')!r}, this side speaks {PROTOCOL_VERSION}")
    kind = header.get("type")
    payload = frames[1] if len(frames) == 2 else None
    if kind == "batch":
        return _decode_batch(header, payload)
    if kind == "policy":
        return _decode_policy(header, payload)
    if kind not in ("hello", "ack", "heartbeat", "lost"):
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:32]!r}")
    if payload is not None:
        raise ProtocolError("malformed", f"{kind} message has 1 frame, got 2")
    actor_id = check_actor_id(_field(header, "actor_id", str))
    if kind == "hello":
        return Hello(
            actor_id=actor_id,
            next_seq=_field(header, "next_seq", int),
            contract_hash=_short_str("contract_hash", _field(header, "contract_hash", str)),
            policy_version=_field(header, "policy_version", int),
        )
    if kind == "ack":
        next_expected = _field(header, "next_expected", int)
        committed = _field(header, "committed", int)
        if committed > next_expected:
            raise ProtocolError("range", f"committed {committed} > next_expected {next_expected}")
        return Ack(actor_id=actor_id, next_expected=next_expected, committed=committed)
    if kind == "lost":
        start, stop = _field(header, "start", int), _field(header, "stop", int)
        if stop <= start:
            raise ProtocolError("range", f"lost range [{start}, {stop}) is empty")
        return Lost(actor_id=actor_id, start=start, stop=stop)
    role = _field(header, "role", str)
    if role not in ("actor", "learner"):
        raise ProtocolError("malformed", f"heartbeat role must be 'actor' or 'learner', got {role[:32]!r}")
    return Heartbeat(
        role=role,
        actor_id=actor_id,
        time=_field(header, "time", float),
        stats=_decode_stats(_field(header, "stats", dict)),
    )
