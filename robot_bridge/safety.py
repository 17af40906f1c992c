"""The safety layer between a policy and the joint command; plain Python, no ROS.

Every control tick calls :meth:`SafetyController.step` with the latest measured state and a callable that
runs the policy; it returns a :class:`SafetyDecision`: the joint targets to send (contract order, rad) and
a :class:`SafetyStatus` with a human-readable reason. The policy runs only when the status is ``RUNNING``.

Rules, in order of precedence:

1. A latched fault (e-stop, non-finite state or action, fall, policy error) holds until :meth:`reset`.
2. No state yet: no command at all (there is no measured pose to hold).
3. Watchdog: state older than ``watchdog_timeout_s`` -> damping command (not latched).
4. NaN/inf in any measurement -> safe stop (latched); tilt beyond ``fall_tilt_rad`` -> fall (latched).
5. Soft start, after start-up and after every fault: from the measured pose towards the default pose at
   ``soft_start_speed`` (and never more than ``max_delta_per_tick``), then ``soft_start_hold_s`` at the
   default pose; then the policy takes over.
6. Policy targets: each joint moves at most ``max_delta_per_tick`` from the previous command, and all
   targets stay inside the contract's joint limits (soft limits by default).

The damping command is the last finite measured pose: with a position interface (``tau = kp (q* - q) -
kd dq``) a target equal to the current position leaves only the damping term, so the legs fold slowly
instead of being driven. A driver that has a true damping mode can switch on the status instead.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from a1_contract import TaskContract


class SafetyStatus(enum.Enum):
    RUNNING = "running"
    SOFT_START = "soft_start"
    WAITING_FOR_STATE = "waiting_for_state"
    STALE_STATE = "stale_state"
    NONFINITE_STATE = "nonfinite_state"
    NONFINITE_ACTION = "nonfinite_action"
    POLICY_ERROR = "policy_error"
    FALLEN = "fallen"
    ESTOP = "estop"

    @property
    def latching(self) -> bool:
        return self in _LATCHING


_LATCHING = {
    SafetyStatus.NONFINITE_STATE,
    SafetyStatus.NONFINITE_ACTION,
    SafetyStatus.POLICY_ERROR,
    SafetyStatus.FALLEN,
    SafetyStatus.ESTOP,
}


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the safety layer (the policy node declares one ROS parameter per field)."""

    watchdog_timeout_s: float = 0.1
    """State older than this (s) -> damping command until fresh state arrives."""
    max_delta_per_tick: float = 0.5
    """Largest change of any joint target from one tick to the next (rad)."""
    soft_start_speed: float = 0.5
    """Joint speed of the soft start from the measured to the default pose (rad/s)."""
    soft_start_hold_s: float = 0.5
    """Time held at the default pose before the policy takes over (s)."""
    fall_tilt_rad: float = 1.0
    """Trunk tilt from upright (angle between gravity and the trunk's -z axis) that counts as a fall (rad)."""
    use_soft_limits: bool = True
    """Clamp to the contract's soft joint limits (True) or to the hard limits (False)."""


@dataclass(frozen=True)
class StateSample:
    """The measured state one tick sees, in contract joint order."""

    stamp: float
    """When it arrived, in seconds of the same clock as ``now`` in :meth:`SafetyController.step`."""
    joint_pos: np.ndarray
    projected_gravity: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Other measurements that must be finite, by name (joint velocities, angular velocity, command, ...)."""


@dataclass(frozen=True)
class SafetyDecision:
    command: np.ndarray | None
    """Joint targets to send (contract order, rad), or ``None``: send nothing."""
    status: SafetyStatus
    reason: str
    policy_ran: bool = False


@dataclass
class _Memory:
    previous_command: np.ndarray | None = None
    last_finite_pose: np.ndarray | None = None
    soft_starting: bool = True
    soft_target: np.ndarray | None = None
    held_ticks: int = 0
    latched: SafetyStatus | None = None
    latched_reason: str = ""
    last_status: SafetyStatus | None = None
    counters: Counter = field(default_factory=Counter)


class SafetyController:
    """See the module docs. ``dt`` is the control period (s), used for the soft-start speed and hold."""

    def __init__(self, contract: TaskContract, config: SafetyConfig | None = None, dt: float | None = None) -> None:
        self.contract = contract
        self.config = config or SafetyConfig()
        self.dt = contract.policy_dt if dt is None else dt
        hard = np.asarray(contract.joint_pos_limits)
        # The contract's joint-target rule: the training simulator clamps its targets to the same limits.
        limits = contract.joint_target_limits() if self.config.use_soft_limits else hard
        self.lower, self.upper = limits[:, 0].copy(), limits[:, 1].copy()
        self.default_pose = np.asarray(contract.default_joint_pos, dtype=np.float64)
        self._fall_gravity_z = -math.cos(self.config.fall_tilt_rad)
        self._soft_step = min(self.config.soft_start_speed * self.dt, self.config.max_delta_per_tick)
        self._hold_ticks = int(math.ceil(round(self.config.soft_start_hold_s / self.dt, 9)))
        self._m = _Memory()

    # ---- operator interface ------------------------------------------------------------------
    @property
    def counters(self) -> dict[str, int]:
        """``entered:<status>`` (transitions), ``ticks:<status>``, ``clamped_to_limits``, ``delta_bounded``."""
        return dict(self._m.counters)

    @property
    def latched(self) -> SafetyStatus | None:
        return self._m.latched

    def estop(self, reason: str = "e-stop requested") -> None:
        """Latch the e-stop (damping command) until :meth:`reset`."""
        self._latch(SafetyStatus.ESTOP, reason)

    def reset(self) -> SafetyStatus | None:
        """Clear a latched fault; the next fresh state starts a soft start. Returns what was latched."""
        was = self._m.latched
        self._m.latched, self._m.latched_reason = None, ""
        self._restart()
        return was

    # ---- the tick ----------------------------------------------------------------------------
    def step(self, now: float, state: StateSample | None, policy: Callable[[], np.ndarray]) -> SafetyDecision:
        """Decide this tick's command; ``policy()`` returns joint targets (rad) and is called only when running."""
        decision = self._decide(now, state, policy)
        m = self._m
        if decision.status is not m.last_status:
            m.counters[f"entered:{decision.status.value}"] += 1
            m.last_status = decision.status
        m.counters[f"ticks:{decision.status.value}"] += 1
        if decision.command is not None:
            m.previous_command = decision.command
        return decision

    def _decide(self, now: float, state: StateSample | None, policy: Callable[[], np.ndarray]) -> SafetyDecision:
        m, cfg = self._m, self.config
        age = math.inf if state is None else now - state.stamp
        fresh = age <= cfg.watchdog_timeout_s
        if fresh and np.isfinite(state.joint_pos).all():  # damping follows the measured pose, faults or not
            m.last_finite_pose = np.asarray(state.joint_pos, dtype=np.float64).copy()
        if m.latched is not None:
            return self._damp(m.latched, m.latched_reason)
        if state is None:
            return SafetyDecision(None, SafetyStatus.WAITING_FOR_STATE, "no state received yet")
        if not fresh:
            self._restart()
            reason = f"state is {age:.3f} s old (watchdog timeout {cfg.watchdog_timeout_s:g} s)"
            return self._damp(SafetyStatus.STALE_STATE, reason)
        bad = _nonfinite(state)
        if bad:
            return self._latch(SafetyStatus.NONFINITE_STATE, f"non-finite measurements: {bad}")
        gravity_z = float(state.projected_gravity[2])
        if gravity_z > self._fall_gravity_z:
            tilt = math.degrees(math.acos(max(-1.0, min(1.0, -gravity_z))))
            return self._latch(SafetyStatus.FALLEN, f"trunk tilted {tilt:.0f} deg from upright (limit "
                               f"{math.degrees(cfg.fall_tilt_rad):.0f} deg)")  # fmt: skip
        if m.soft_starting:
            return self._soft_start(m.last_finite_pose)
        try:
            targets = np.asarray(policy(), dtype=np.float64)
        except Exception as exc:  # a broken policy must not leave the last command in force
            return self._latch(SafetyStatus.POLICY_ERROR, f"policy raised {type(exc).__name__}: {exc}")
        if targets.shape != self.default_pose.shape or not np.isfinite(targets).all():
            return self._latch(SafetyStatus.NONFINITE_ACTION, f"policy targets not finite/shaped: {targets}")
        return SafetyDecision(self._bounded(targets), SafetyStatus.RUNNING, "policy", policy_ran=True)

    # ---- helpers ------------------------------------------------------------------------------
    def _soft_start(self, measured: np.ndarray) -> SafetyDecision:
        m = self._m
        start = self._clamp(measured) if m.soft_target is None else m.soft_target
        step = np.clip(self.default_pose - start, -self._soft_step, self._soft_step)
        target = start + step
        if np.abs(self.default_pose - target).max() < 1e-9:
            target = self.default_pose.copy()
            m.held_ticks += 1
        m.soft_target = target
        m.soft_starting = m.held_ticks <= self._hold_ticks  # the policy takes over on the next tick
        left = np.abs(self.default_pose - target).max()
        return SafetyDecision(target, SafetyStatus.SOFT_START, f"soft start: {left:.3f} rad from the default pose")

    def _bounded(self, targets: np.ndarray) -> np.ndarray:
        m, d = self._m, self.config.max_delta_per_tick
        out = targets
        if m.previous_command is not None:
            out = np.clip(out, m.previous_command - d, m.previous_command + d)
            if not np.array_equal(out, targets):
                m.counters["delta_bounded"] += 1
        clamped = self._clamp(out)
        if not np.array_equal(clamped, out):
            m.counters["clamped_to_limits"] += 1
        return clamped

    def _clamp(self, targets: np.ndarray) -> np.ndarray:
        return np.clip(targets, self.lower, self.upper)

    def _damp(self, status: SafetyStatus, reason: str) -> SafetyDecision:
        pose = self._m.last_finite_pose if self._m.last_finite_pose is not None else self._m.previous_command
        command = None if pose is None else self._clamp(pose)
        return SafetyDecision(command, status, reason)

    def _latch(self, status: SafetyStatus, reason: str) -> SafetyDecision:
        m = self._m
        if m.latched is None or status is SafetyStatus.ESTOP:  # the first fault's reason is the one kept
            m.latched, m.latched_reason = status, reason
        self._restart()
        return self._damp(m.latched, m.latched_reason)

    def _restart(self) -> None:
        self._m.soft_starting = True
        self._m.soft_target = None
        self._m.held_ticks = 0


def _nonfinite(state: StateSample) -> str:
    """Names of the non-finite measurements, or ''."""
    parts = {"joint_pos": state.joint_pos, "projected_gravity": state.projected_gravity, **state.extras}
    if np.isfinite(np.concatenate([np.ravel(v) for v in parts.values()])).all():  # one check on the hot path
        return ""
    return ", ".join(name for name, value in parts.items() if not np.isfinite(np.asarray(value, np.float64)).all())
