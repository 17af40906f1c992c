"""Wire schema of the fine-tuning transport (actor on the robot <-> learner on the workstation).

Every message is a list of zmq frames: ``[JSON header]`` or ``[JSON header, binary payload]``. The header
carries ``"v"`` (:data:`PROTOCOL_VERSION`) and ``"type"``; payloads are raw little-endian numpy buffers (a
transition batch) or the ONNX file bytes (a policy update). No pickle anywhere: :func:`decode` only parses
JSON and reads fixed-dtype buffers, and it validates every field, so bytes from the network can at worst be
rejected with a :class:`ProtocolError` whose ``reason`` is a short counter key. ``finetune/PROTOCOL.md``
documents the frames, fields and layout; this module is the implementation (``encode`` / ``decode``).

Run the tests: ``.venv/bin/python -m pytest tests/finetune/test_protocol.py -q``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 << 10
MAX_DIM = 4096  # obs / action width sanity bound (the A1 uses 48 / 12)
MAX_SEQ = (1 << 63) - 1
ACTION_TOLERANCE = 1e-5  # normalized actions are clipped to [-1, 1]; allow float rounding
_ACTOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TERM_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
_FLOAT = np.dtype("<f4")
_INT = np.dtype("<i4")
_BOOL = np.dtype("u1")


class ProtocolError(ValueError):
    """A message that does not follow the schema; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _check_actor_id(actor_id: Any) -> str:
    if not isinstance(actor_id, str) or not _ACTOR_ID.match(actor_id):
        raise ProtocolError("malformed", f"actor_id must be 1-64 chars of [A-Za-z0-9_.:-], got {actor_id!r}")
    return actor_id


def _check_int(name: str, value: Any, low: int = 0, high: int = MAX_SEQ) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ProtocolError("malformed", f"{name} must be an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise ProtocolError("range", f"{name}={value} outside [{low}, {high}]")
    return int(value)


def _as(name: str, value: Any, dtype: np.dtype, ndim: int) -> np.ndarray:
    try:
        array = np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ProtocolError("shape", f"{name}: cannot convert to {dtype}: {err}") from None
    if array.ndim != ndim:
        raise ProtocolError("shape", f"{name} must be {ndim}-D, got shape {array.shape}")
    return array


@dataclass(frozen=True)
class TransitionBatch:
    """Consecutive transitions of one actor; row i has sequence number ``first_seq + i``."""

    actor_id: str
    first_seq: int  # seq of row 0; rows are first_seq, first_seq+1, ...
    obs: np.ndarray  # (N, D) float32, raw observation (before obs-normalization)
    actions: np.ndarray  # (N, A) float32, the learner's normalized action in [-1, 1]
    rewards: np.ndarray  # (N,) float32
    next_obs: np.ndarray  # (N, D) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    policy_version: np.ndarray  # (N,) int32: version of the policy that chose the action
    reward_terms: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) float32, unweighted terms

    def __post_init__(self) -> None:
        # Coerce to the wire dtypes and validate once, so a batch that exists is a batch that can be sent.
        _check_actor_id(self.actor_id)
        _check_int("first_seq", self.first_seq)
        set_ = object.__setattr__
        for name, dtype, ndim in (
            ("obs", np.float32, 2),
            ("actions", np.float32, 2),
            ("rewards", np.float32, 1),
            ("next_obs", np.float32, 2),
            ("terminated", np.bool_, 1),
            ("truncated", np.bool_, 1),
            ("policy_version", np.int32, 1),
        ):
            set_(self, name, _as(name, getattr(self, name), dtype, ndim))
        if not isinstance(self.reward_terms, dict):
            raise ProtocolError("malformed", "reward_terms must be a dict name -> (N,) array")
        terms = {}
        for name, values in self.reward_terms.items():
            if not isinstance(name, str) or not _TERM_NAME.match(name):
                raise ProtocolError("malformed", f"reward term name {name!r} is not 1-64 chars of [A-Za-z0-9_.:/-]")
            terms[name] = _as(f"reward_terms[{name}]", values, np.float32, 1)
        set_(self, "reward_terms", terms)
        n, obs_dim = self.obs.shape
        action_dim = self.actions.shape[1]
        if n < 1 or not 1 <= obs_dim <= MAX_DIM or not 1 <= action_dim <= MAX_DIM:
            raise ProtocolError("shape", f"need N >= 1 and dims in [1, {MAX_DIM}], got obs {self.obs.shape}")
        _check_int("last seq", self.first_seq + n - 1)
        expected = {"actions": (n, action_dim), "next_obs": (n, obs_dim)}
        expected.update({k: (n,) for k in ("rewards", "terminated", "truncated", "policy_version")})
        expected.update({f"reward_terms[{k}]": (n,) for k in terms})
        for name, shape in expected.items():
            actual = terms[name[13:-1]].shape if name.startswith("reward_terms[") else getattr(self, name).shape
            if actual != shape:
                raise ProtocolError("shape", f"{name} has shape {actual}, expected {shape} (obs is {self.obs.shape})")
        for name in ("obs", "actions", "rewards", "next_obs"):
            if not np.isfinite(getattr(self, name)).all():
                raise ProtocolError("nonfinite", f"{name} contains NaN or inf")
        for name, values in terms.items():
            if not np.isfinite(values).all():
                raise ProtocolError("nonfinite", f"reward_terms[{name}] contains NaN or inf")
        if np.abs(self.actions).max() > 1.0 + ACTION_TOLERANCE:
            raise ProtocolError(
                "range", f"actions must be normalized to [-1, 1], max |a| = {np.abs(self.actions).max()}"
            )
        if self.policy_version.min() < 0:
            raise ProtocolError("range", "policy_version must be >= 0")

    @classmethod
    def _trusted(cls, **fields: Any) -> TransitionBatch:
        """Build from parts of already validated batches (slice/concat) without re-checking every value."""
        batch = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(batch, name, value)
        return batch

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def end_seq(self) -> int:
        """One past the last row's seq."""
        return self.first_seq + len(self)

    @property
    def seqs(self) -> np.ndarray:
        """Sequence number of every row (uint64)."""
        return np.arange(self.first_seq, self.end_seq, dtype=np.uint64)

    def slice(self, start: int, stop: int) -> TransitionBatch:
        """Rows ``start:stop`` (row indices, not seqs) as a new batch."""
        start, stop, _ = slice(start, stop).indices(len(self))
        if stop <= start:
            raise ValueError(f"empty slice [{start}, {stop}) of a batch of {len(self)}")
        cut = slice(start, stop)
        return TransitionBatch._trusted(
            actor_id=self.actor_id,
            first_seq=self.first_seq + start,
            obs=self.obs[cut],
            actions=self.actions[cut],
            rewards=self.rewards[cut],
            next_obs=self.next_obs[cut],
            terminated=self.terminated[cut],
            truncated=self.truncated[cut],
            policy_version=self.policy_version[cut],
            reward_terms={k: v[cut] for k, v in self.reward_terms.items()},
        )

    @staticmethod
    def concat(batches: list[TransitionBatch]) -> TransitionBatch:
        """Join contiguous batches of one actor (same dims and reward terms) into one."""
        if not batches:
            raise ValueError("concat needs at least one batch")
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        for prev, nxt in zip(batches, batches[1:], strict=False):
            if nxt.actor_id != first.actor_id or nxt.first_seq != prev.end_seq:
                raise ValueError(
                    f"batches are not contiguous: {prev.actor_id}[{prev.first_seq}:{prev.end_seq}] then "
                    f"{nxt.actor_id}[{nxt.first_seq}:{nxt.end_seq}]"
                )
            if set(nxt.reward_terms) != set(first.reward_terms):
                raise ValueError(f"reward terms differ: {sorted(first.reward_terms)} vs {sorted(nxt.reward_terms)}")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in batches])

        if any(b.obs.shape[1] != first.obs.shape[1] or b.actions.shape[1] != first.actions.shape[1] for b in batches):
            raise ValueError("batches differ in obs or action width")
        return TransitionBatch._trusted(
            actor_id=first.actor_id,
            first_seq=first.first_seq,
            obs=cat("obs"),
            actions=cat("actions"),
            rewards=cat("rewards"),
            next_obs=cat("next_obs"),
            terminated=cat("terminated"),
            truncated=cat("truncated"),
            policy_version=cat("policy_version"),
            reward_terms={k: np.concatenate([b.reward_terms[k] for b in batches]) for k in first.reward_terms},
        )


@dataclass(frozen=True)
class Hello:
    """Actor -> learner on every (re)connect: who it is and where its sequence stands."""

    actor_id: str
    next_seq: int  # the seq the actor will assign next (everything below is spooled or was pruned)
    contract_hash: str  # a1_contract hash the actor runs; the learner refuses a different one
    policy_version: int  # version of the policy the actor runs now (0: the pretrained one)


@dataclass(frozen=True)
class Ack:
    """Learner -> actor: how far the actor's stream is safe."""

    actor_id: str
    next_expected: int  # every seq < it is in the learner's buffer
    committed: int  # every seq < it is in a checkpoint on disk (the actor may prune below it)


@dataclass(frozen=True)
class PolicyUpdate:
    """Learner -> actor: a new ONNX policy; the sha256 of ``onnx`` travels in the header."""

    version: int  # increases with every update
    n_updates: int  # gradient steps the learner had taken when it exported
    contract_hash: str  # must equal the actor's contract hash
    onnx: bytes  # the ONNX model file


@dataclass(frozen=True)
class Heartbeat:
    """Both directions, every ``heartbeat_s``: liveness plus a few counters for the other side's log."""

    role: str  # "actor" or "learner"
    actor_id: str
    time: float  # sender's wall clock (time.time()), for logs only
    stats: dict = field(default_factory=dict)  # str -> int | float | str | bool


@dataclass(frozen=True)
class Lost:
    """Actor -> learner: seqs ``[start, stop)`` are gone from the actor's spool and will never be sent."""

    actor_id: str
    start: int
    stop: int


Message = TransitionBatch | Hello | Ack | PolicyUpdate | Heartbeat | Lost
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
        return _check_int(name, value)
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
    actor_id = _check_actor_id(_field(header, "actor_id", str))
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
    actor_id = _check_actor_id(_field(header, "actor_id", str))
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
