"""The parts a :class:`~a1_contract.TaskContract` is made of: observation terms, action bounds, velocity command
ranges, terminations and domain randomization, and :class:`ContractError`, raised for a malformed contract or two
that must match and do not.

Each part is a frozen dataclass; the contract's JSON document (:mod:`a1_contract.document`) stores them by field
name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class ContractError(ValueError):
    """A contract is malformed, or two contracts that must match do not."""


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
