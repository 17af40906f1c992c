"""The task contract: one typed, hashable description of the A1 flat velocity task.

A :class:`TaskContract` is everything a policy and a robot must agree on: joint order, default
pose, PD gains, observation layout, action mapping and bounds, rates, rewards, terminations and
domain randomization. It serializes to JSON (the interchange format that sits inside checkpoints
and ONNX files; schema in ``a1_contract/SCHEMA.md``, written and read by :mod:`a1_contract.document`) with a
stable hash over its content. Its parts (:class:`ObsTerm`, :class:`ActionBounds`, ...) are in
:mod:`a1_contract.components`.

Action mapping (the seed's finding made explicit): the learner acts in ``a in [-1, 1]^12``;
``raw = low + (a + 1) / 2 * (high - low)`` with the contract's :class:`ActionBounds`; the joint
target is ``default_joint_pos + action_scale * raw``. ``raw`` is also what the ``actions``
observation term and the ``action_rate_l2`` reward see, as in Isaac Lab.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from a1_contract.components import (
    ActionBounds,
    CommandRanges,
    ContractError,
    DomainRandomization,
    ObsTerm,
    Terminations,
)
from a1_contract.document import content_hash, contract_content, contract_from_dict


@dataclass(frozen=True)
class TaskContract:
    """The robot + task contract. Per-joint tuples follow ``joint_names``."""

    name: str
    joint_names: tuple[str, ...]
    default_joint_pos: tuple[float, ...]
    joint_pos_limits: tuple[tuple[float, float], ...]
    soft_joint_pos_limit_factor: float
    kp: tuple[float, ...]
    kd: tuple[float, ...]
    effort_limit: tuple[float, ...]
    velocity_limit: tuple[float, ...]
    armature: float
    sdk_motor_index: tuple[int, ...]
    action_scale: float
    action_bounds: ActionBounds
    obs_terms: tuple[ObsTerm, ...]
    sim_dt: float
    decimation: int
    episode_length_s: float
    init_base_height: float
    commands: CommandRanges
    rewards: Mapping[str, float]
    """Reward term -> weight. Step reward = sum(weight * term) * policy_dt."""
    reward_params: Mapping[str, float]
    terminations: Terminations
    randomization: DomainRandomization
    sources: Mapping[str, str] = field(default_factory=dict)
    """Field -> where its value comes from (not hashed)."""

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(set(self.joint_names)) != n:
            raise ContractError("joint_names: duplicate names")
        per_joint = ("default_joint_pos", "joint_pos_limits", "kp", "kd", "effort_limit", "velocity_limit")
        for what in (*per_joint, "sdk_motor_index"):
            if len(getattr(self, what)) != n:
                raise ContractError(f"{what}: expected {n} entries (one per joint), got {len(getattr(self, what))}")
        if sorted(self.sdk_motor_index) != list(range(n)):
            raise ContractError(f"sdk_motor_index: must be a permutation of 0..{n - 1}, got {self.sdk_motor_index}")
        if len(self.action_bounds.low) != n:
            raise ContractError(f"action_bounds: expected {n} entries, got {len(self.action_bounds.low)}")
        if self.sim_dt <= 0 or self.decimation < 1 or self.episode_length_s <= 0:
            raise ContractError("sim_dt, decimation and episode_length_s must be positive")
        names = [t.name for t in self.obs_terms]
        if len(set(names)) != len(names):
            raise ContractError(f"obs_terms: duplicate names in {names}")
        # Keep dict fields immutable and ordered for hashing.
        object.__setattr__(self, "rewards", dict(self.rewards))
        object.__setattr__(self, "reward_params", dict(self.reward_params))
        object.__setattr__(self, "sources", dict(self.sources))

    # ---- derived quantities -------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def policy_dt(self) -> float:
        return self.sim_dt * self.decimation

    @property
    def policy_rate_hz(self) -> float:
        return 1.0 / self.policy_dt

    @property
    def max_episode_steps(self) -> int:
        # Isaac Lab: ceil(episode_length_s / step_dt); round first so 20 / 0.02 is 1000, not 1001.
        return math.ceil(round(self.episode_length_s / self.policy_dt, 9))

    @property
    def obs_dim(self) -> int:
        return sum(t.dim for t in self.obs_terms)

    def obs_slices(self) -> dict[str, slice]:
        """Term name -> slice into the flat observation vector."""
        out, start = {}, 0
        for term in self.obs_terms:
            out[term.name] = slice(start, start + term.dim)
            start += term.dim
        return out

    def soft_joint_pos_limits(self) -> np.ndarray:
        """(num_joints, 2) limits shrunk about their midpoint by the soft factor (Isaac Lab's rule)."""
        limits = np.asarray(self.joint_pos_limits)
        mid = limits.mean(axis=1)
        half = 0.5 * (limits[:, 1] - limits[:, 0]) * self.soft_joint_pos_limit_factor
        return np.stack([mid - half, mid + half], axis=1)

    def joint_target_limits(self) -> np.ndarray:
        """(num_joints, 2) the one rule for what a joint target may be: the soft joint limits.

        The training simulator clamps its targets to these, and the robot's safety layer clamps to the
        same limits, so a policy never meets on the robot a clamp it did not meet in training.
        """
        return self.soft_joint_pos_limits()

    def clamp_joint_targets(self, targets: np.ndarray) -> np.ndarray:
        """Joint targets (..., num_joints) clamped to :meth:`joint_target_limits`."""
        limits = self.joint_target_limits()
        clamped: np.ndarray = np.clip(targets, limits[:, 0], limits[:, 1])
        return clamped

    def raw_target_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`joint_target_limits` in raw action units (low, high): bounds beyond them are dead range."""
        limits = self.joint_target_limits()
        default = np.asarray(self.default_joint_pos)
        return (limits[:, 0] - default) / self.action_scale, (limits[:, 1] - default) / self.action_scale

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """Normalized action in [-1, 1] -> joint position targets (rad), before the target clamp."""
        return self.raw_joint_targets(self.action_bounds.to_raw(action))

    def raw_joint_targets(self, raw: np.ndarray) -> np.ndarray:
        """Raw action (bounds units) -> joint position targets (rad): default + action_scale * raw."""
        return np.asarray(self.default_joint_pos) + self.action_scale * np.asarray(raw)

    # ---- variants -----------------------------------------------------------------------------
    def replace(self, **changes: Any) -> TaskContract:
        """A copy with some fields changed (variants are built this way, never by copying)."""
        return dataclasses.replace(self, **changes)

    def without_obs_terms(self, *names: str, name: str | None = None) -> TaskContract:
        """A variant that drops observation terms (e.g. ``base_lin_vel``, unmeasured on a real A1)."""
        known = {t.name for t in self.obs_terms}
        missing = set(names) - known
        if missing:
            raise ContractError(f"cannot drop unknown obs terms {sorted(missing)}; known: {sorted(known)}")
        kept = tuple(t for t in self.obs_terms if t.name not in names)
        return self.replace(obs_terms=kept, name=name or f"{self.name}-no-{'-'.join(names)}")

    # ---- serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema in SCHEMA.md), including ``hash``."""
        doc = self._content()
        doc["hash"] = content_hash(doc)
        doc["sources"] = dict(self.sources)
        return doc

    def _content(self) -> dict[str, Any]:
        return contract_content(self)

    @property
    def hash(self) -> str:
        return content_hash(self._content())

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], verify_hash: bool = True) -> TaskContract:
        """Parse a contract document; refuses unknown schema versions and (by default) a wrong hash."""
        return contract_from_dict(cls, doc, verify_hash)

    @classmethod
    def from_json(cls, text: str, verify_hash: bool = True) -> TaskContract:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"contract is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ContractError("contract JSON must be an object")
        return cls.from_dict(doc, verify_hash=verify_hash)

    def diff(self, other: TaskContract) -> list[str]:
        """Top-level JSON keys whose values differ (empty when the hashes match)."""
        mine, theirs = self._content(), other._content()
        return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))

    def require_same(self, other: TaskContract, what: str = "policy") -> None:
        """Raise :class:`ContractError` naming the differing fields if ``other`` does not match."""
        if other.hash != self.hash:
            raise ContractError(
                f"{what} contract {other.name!r} ({other.hash}) does not match the expected contract "
                f"{self.name!r} ({self.hash}); differing fields: {', '.join(self.diff(other))}"
            )
