"""The task contract: one typed, hashable description of the A1 flat velocity task.

A :class:`TaskContract` is everything a policy and a robot must agree on: joint order, default
pose, PD gains, observation layout, action mapping and bounds, rates, rewards, terminations and
domain randomization. It serializes to JSON (the interchange format that sits inside checkpoints
and ONNX files; schema in ``a1_contract/SCHEMA.md``) with a stable hash over its content.

Action mapping (the seed's finding made explicit): the learner acts in ``a in [-1, 1]^12``;
``raw = low + (a + 1) / 2 * (high - low)`` with the contract's :class:`ActionBounds`; the joint
target is ``default_joint_pos + action_scale * raw``. ``raw`` is also what the ``actions``
observation term and the ``action_rate_l2`` reward see, as in Isaac Lab.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


class ContractError(ValueError):
    """A contract is malformed, or two contracts that must match do not."""


def _floats(values: Sequence[float], what: str, length: int | None = None) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if length is not None and len(out) != length:
        raise ContractError(f"{what}: expected {length} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ContractError(f"{what}: values must be finite, got {out}")
    return out


def _range(values: Sequence[float], what: str) -> tuple[float, float]:
    low, high = _floats(values, what, 2)
    if low > high:
        raise ContractError(f"{what}: low {low} > high {high}")
    return low, high


@dataclass(frozen=True)
class ObsTerm:
    """One observation term, in the order the policy sees them.

    Pipeline per term, as Isaac Lab's observation manager: value -> additive noise -> clip -> scale.
    """

    name: str
    """Term name, Isaac Lab's (``base_lin_vel``, ``joint_pos``, ...)."""
    dim: int
    """Number of entries."""
    scale: float = 1.0
    """Multiplier applied last."""
    noise: float = 0.0
    """Half-width ``n`` of the additive uniform noise U[-n, n] used in training (0 = none)."""
    clip: tuple[float, float] | None = None
    """Clip range applied before scaling, or ``None``."""
    source: str = ""
    """Where the value comes from, in sim and on the robot."""


@dataclass(frozen=True)
class ActionBounds:
    """Per-joint bounds of the raw action, in raw action units (before ``action_scale``).

    ``method`` names how they were chosen (``symmetric``, ``ppo_percentile``, ``joint_limits``,
    ``explicit``) so a checkpoint says why its bounds are what they are.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    method: str = "explicit"

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high):
            raise ContractError("action_bounds: low and high differ in length")
        bad = [i for i, (lo, hi) in enumerate(zip(self.low, self.high, strict=True)) if not lo < hi]
        if bad:
            raise ContractError(f"action_bounds: low must be < high, violated at joints {bad}")

    @classmethod
    def symmetric(cls, width: float, num_joints: int = 12) -> ActionBounds:
        """``[-width, width]`` on every joint (Isaac Lab 3.0's SB3 default is ``width=1``)."""
        if not width > 0:
            raise ContractError(f"action_bounds: symmetric width must be > 0, got {width}")
        return cls((-width,) * num_joints, (width,) * num_joints, f"symmetric_{width:g}")

    def to_raw(self, action: np.ndarray) -> np.ndarray:
        """Map normalized actions in [-1, 1] to raw units."""
        low = np.asarray(self.low)
        high = np.asarray(self.high)
        raw: np.ndarray = low + (np.asarray(action) + 1.0) * 0.5 * (high - low)
        return raw

    def to_normalized(self, raw: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_raw`."""
        low = np.asarray(self.low)
        high = np.asarray(self.high)
        normalized: np.ndarray = 2.0 * (np.asarray(raw) - low) / (high - low) - 1.0
        return normalized


@dataclass(frozen=True)
class CommandRanges:
    """Velocity command sampling (Isaac Lab ``UniformVelocityCommandCfg``)."""

    lin_vel_x: tuple[float, float] = (-1.0, 1.0)
    """m/s, body frame."""
    lin_vel_y: tuple[float, float] = (-1.0, 1.0)
    """m/s, body frame."""
    ang_vel_z: tuple[float, float] = (-1.0, 1.0)
    """rad/s; overwritten by heading control in heading envs."""
    heading: tuple[float, float] = (-math.pi, math.pi)
    """rad, target heading range."""
    heading_command: bool = True
    """Yaw rate from the heading error: clip(stiffness * wrap(heading - yaw), ang_vel_z)."""
    heading_control_stiffness: float = 0.5
    rel_heading_envs: float = 1.0
    """Fraction of resamples that use heading control."""
    rel_standing_envs: float = 0.02
    """Fraction of resamples with an all-zero command."""
    resampling_time_range: tuple[float, float] = (10.0, 10.0)
    """Seconds between resamples (also resampled on reset)."""


@dataclass(frozen=True)
class Terminations:
    """Episode ends: trunk contact terminates; the time limit truncates."""

    base_contact_body: str = "trunk"
    base_contact_threshold: float = 1.0
    """N; the max over the contact history above this terminates."""
    base_contact_history: int = 3
    """Physics steps of contact-force history (Isaac Lab's contact sensor history_length)."""
    time_out_is_truncation: bool = True
    """Time-outs are reported as truncations, to be bootstrapped by the learner."""


@dataclass(frozen=True)
class DomainRandomization:
    """Randomization of dynamics, resets and pushes. Ranges equal at both ends mean no randomness."""

    static_friction_range: tuple[float, float] = (0.8, 0.8)
    """Robot material, startup; MuJoCo has one Coulomb coefficient and uses this one."""
    dynamic_friction_range: tuple[float, float] = (0.6, 0.6)
    """Robot material, startup (recorded; PhysX only)."""
    base_mass_mode: str = "scale_log_uniform"
    """``scale_log_uniform`` (mass *= s, log s ~ U[log lo, log hi]) or ``add_uniform`` (kg)."""
    base_mass_range: tuple[float, float] = (1.0 / 1.25, 1.25)
    base_com_range: tuple[tuple[float, float], ...] = ((-0.05, 0.05), (-0.05, 0.05), (-0.01, 0.01))
    """Trunk COM offset x, y, z (m), startup."""
    reset_base_pos_xy: tuple[float, float] = (-0.5, 0.5)
    """m, around the env origin."""
    reset_base_yaw: tuple[float, float] = (-3.14, 3.14)
    reset_base_velocity: tuple[float, float] = (-0.5, 0.5)
    """Each of vx, vy, vz (m/s) and wx, wy, wz (rad/s)."""
    reset_joint_pos_scale: tuple[float, float] = (0.5, 1.5)
    """q = default * U(range), clamped to soft limits; joint velocities reset to 0."""
    push_interval_s: tuple[float, float] | None = (10.0, 15.0)
    """Seconds between pushes, ``None`` disables pushes."""
    push_velocity_xy: tuple[float, float] = (-0.5, 0.5)
    """m/s added to the root's world-frame vx and vy at a push."""


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
        doc["hash"] = _hash(doc)
        doc["sources"] = dict(self.sources)
        return doc

    def _content(self) -> dict[str, Any]:
        joints = list(self.joint_names)
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "joint_names": joints,
            "default_joint_pos": dict(zip(joints, self.default_joint_pos, strict=True)),
            "joint_pos_limits": {j: list(lim) for j, lim in zip(joints, self.joint_pos_limits, strict=True)},
            "soft_joint_pos_limit_factor": self.soft_joint_pos_limit_factor,
            "kp": dict(zip(joints, self.kp, strict=True)),
            "kd": dict(zip(joints, self.kd, strict=True)),
            "effort_limit": dict(zip(joints, self.effort_limit, strict=True)),
            "velocity_limit": dict(zip(joints, self.velocity_limit, strict=True)),
            "armature": self.armature,
            "sdk_motor_index": list(self.sdk_motor_index),
            "action_scale": self.action_scale,
            "action_bounds": {
                "low": list(self.action_bounds.low),
                "high": list(self.action_bounds.high),
                "method": self.action_bounds.method,
            },
            "obs_terms": [
                {
                    "name": t.name,
                    "dim": t.dim,
                    "scale": t.scale,
                    "noise": t.noise,
                    "clip": None if t.clip is None else list(t.clip),
                    "source": t.source,
                }
                for t in self.obs_terms
            ],
            "obs_dim": self.obs_dim,
            "sim_dt": self.sim_dt,
            "decimation": self.decimation,
            "policy_rate_hz": self.policy_rate_hz,
            "episode_length_s": self.episode_length_s,
            "init_base_height": self.init_base_height,
            "commands": _plain(dataclasses.asdict(self.commands)),
            "rewards": dict(self.rewards),
            "reward_params": dict(self.reward_params),
            "terminations": _plain(dataclasses.asdict(self.terminations)),
            "randomization": _plain(dataclasses.asdict(self.randomization)),
        }

    @property
    def hash(self) -> str:
        return _hash(self._content())

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], verify_hash: bool = True) -> TaskContract:
        """Parse a contract document; refuses unknown schema versions and (by default) a wrong hash."""
        try:
            version = doc.get("schema_version")
            if type(version) is not int or version != SCHEMA_VERSION:
                raise ContractError(f"schema_version {version!r} is not supported (this code reads {SCHEMA_VERSION})")
            joints = tuple(doc["joint_names"])

            def per_joint(key: str) -> tuple[float, ...]:
                return tuple(float(doc[key][j]) for j in joints)

            bounds = doc["action_bounds"]
            contract = cls(
                name=str(doc["name"]),
                joint_names=joints,
                default_joint_pos=per_joint("default_joint_pos"),
                joint_pos_limits=tuple(_range(doc["joint_pos_limits"][j], f"joint_pos_limits[{j}]") for j in joints),
                soft_joint_pos_limit_factor=float(doc["soft_joint_pos_limit_factor"]),
                kp=per_joint("kp"),
                kd=per_joint("kd"),
                effort_limit=per_joint("effort_limit"),
                velocity_limit=per_joint("velocity_limit"),
                armature=float(doc["armature"]),
                sdk_motor_index=tuple(int(i) for i in doc["sdk_motor_index"]),
                action_scale=float(doc["action_scale"]),
                action_bounds=ActionBounds(
                    _floats(bounds["low"], "action_bounds.low", len(joints)),
                    _floats(bounds["high"], "action_bounds.high", len(joints)),
                    str(bounds.get("method", "explicit")),
                ),
                obs_terms=tuple(
                    ObsTerm(
                        name=str(t["name"]),
                        dim=int(t["dim"]),
                        scale=float(t["scale"]),
                        noise=float(t["noise"]),
                        clip=None if t.get("clip") is None else _range(t["clip"], f"obs_terms[{t['name']}].clip"),
                        source=str(t.get("source", "")),
                    )
                    for t in doc["obs_terms"]
                ),
                sim_dt=float(doc["sim_dt"]),
                decimation=int(doc["decimation"]),
                episode_length_s=float(doc["episode_length_s"]),
                init_base_height=float(doc["init_base_height"]),
                commands=CommandRanges(**_tuples(doc["commands"])),
                rewards={str(k): float(v) for k, v in doc["rewards"].items()},
                reward_params={str(k): float(v) for k, v in doc["reward_params"].items()},
                terminations=Terminations(**_tuples(doc["terminations"])),
                randomization=DomainRandomization(**_tuples(doc["randomization"])),
                sources=dict(doc.get("sources", {})),
            )
        except ContractError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContractError(f"malformed contract document: {type(exc).__name__}: {exc}") from exc
        # Derived keys are hashed but not parsed: an edit to them would otherwise slip past the hash check.
        for key, value in (("obs_dim", contract.obs_dim), ("policy_rate_hz", contract.policy_rate_hz)):
            if verify_hash and key in doc and doc[key] != value:
                raise ContractError(f"contract hash check: {key} is {doc[key]!r} in the document, {value!r} by content")
        if verify_hash and "hash" not in doc:
            raise ContractError("contract document has no 'hash' (pass verify_hash=False to read a hand-written one)")
        if verify_hash and doc["hash"] != contract.hash:
            raise ContractError(
                f"contract hash mismatch: document says {doc['hash']}, content hashes to {contract.hash} "
                "(the document was edited or is corrupt)"
            )
        return contract

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


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, for JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    """Lists -> tuples, recursively (inverse of :func:`_plain` for the frozen dataclasses)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _hash(content: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace, ``sources`` and ``hash`` excluded)."""
    body = {k: v for k, v in content.items() if k not in ("hash", "sources")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
