"""The messages of the fine-tuning transport (actor on the robot <-> learner on the workstation) as frozen
dataclasses: :class:`TransitionBatch`, :class:`Hello`, :class:`Ack`, :class:`PolicyUpdate`, :class:`Heartbeat`,
:class:`Lost`, and :class:`ProtocolError`, raised by every check. A :class:`TransitionBatch` is validated when
it is built (wire dtypes, shapes, finite values, action range), so one that exists can be sent; the other
messages are checked when decoded. Their frames are :mod:`finetune.protocol`; ``finetune/PROTOCOL.md``
documents both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_DIM = 4096  # obs / action width sanity bound (the A1 uses 48 / 12)
MAX_SEQ = (1 << 63) - 1
ACTION_TOLERANCE = 1e-5  # normalized actions are clipped to [-1, 1]; allow float rounding
_ACTOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TERM_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")


class ProtocolError(ValueError):
    """A message that does not follow the schema; ``reason`` is a short counter key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def check_actor_id(actor_id: Any) -> str:
    """``actor_id`` if it is 1-64 characters of ``[A-Za-z0-9_.:-]``, else :class:`ProtocolError`."""
    if not isinstance(actor_id, str) or not _ACTOR_ID.match(actor_id):
        raise ProtocolError("malformed", f"actor_id must be 1-64 chars of [A-Za-z0-9_.:-], got {actor_id!r}")
    return actor_id


def check_int(name: str, value: Any, low: int = 0, high: int = MAX_SEQ) -> int:
    """``value`` as an int if it is an integer (not a bool) in ``[low, high]``, else :class:`ProtocolError`."""
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
        check_actor_id(self.actor_id)
        check_int("first_seq", self.first_seq)
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
        check_int("last seq", self.first_seq + n - 1)
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
