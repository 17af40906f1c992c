"""Fall detection and a stand-up controller for the A1; plain numpy, no ROS.

:func:`classify_posture` tells from the gravity direction in the trunk frame (``projected_gravity``, see
:func:`robot_bridge.observation.projected_gravity_from_xyzw`) and an optional trunk-height estimate whether the
robot is upright, on its belly, on its back or on a side. :class:`StandUpController` gets a robot lying on its
belly back onto its feet with joint position targets only, so it runs through the same interface as a
policy (the contract's PD gains, which the ROS path cannot change):

1. ``FOLD``: calves folded and hips at the tuck, thighs where they are (the legs get short);
2. ``TUCK``: thighs to the tuck: feet under the hips, the trunk a few cm off the ground;
3. ``RISE``: from the tuck to the contract's default pose (the legs push the trunk up);
4. ``HOLD``: the default pose for a short while, then ``done`` (the caller hands over to the policy).

Each move is a minimum-jerk interpolation, stretched when needed so that no target moves more than
``max_delta_per_tick`` per tick (the first one from the measured pose), and every target is inside the
contract's hard joint limits and, once a joint measured outside them has been brought in at that rate, inside
its soft limits. The
controller refuses (no targets, a reason for the operator) a robot on its back or side, and aborts to refused
when the trunk tilts beyond ``abort_tilt_rad`` on the way up. A refused or aborted robot should get the
damping command (the measured pose as target) until an operator turns it over and calls :meth:`start` again.

Measured in the emulator by ``python benchmarks/standup.py``; tested by ``tests/robot_bridge/test_standup.py``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace

import numpy as np

from a1_contract import TaskContract


class Posture(enum.Enum):
    UPRIGHT = "upright"
    """Right side up at standing height (or right side up with no height estimate)."""
    BELLY = "belly"
    """Right side up but low: lying on its belly."""
    BACK = "back"
    """Upside down."""
    SIDE = "side"
    """Anything in between: on a side, or on its nose or tail."""


@dataclass(frozen=True)
class PostureThresholds:
    """Where one posture ends and the next begins."""

    upright_tilt_rad: float = 0.6
    """Tilt (angle between the trunk's -z axis and gravity) below which the trunk is right side up (rad). A
    robot lying at more than ~35 deg rests on a side or a leg; stand-ups from there rolled it over in the
    emulator, so it counts as on its side (the safety layer's fall rule is separate)."""
    back_tilt_rad: float = 2.2
    """Tilt above which the robot lies on its back (rad); in between it is on a side."""
    min_standing_height_m: float = 0.18
    """Trunk height below which a right-side-up robot lies on its belly (m); the A1 stands at ~0.27 m."""


def tilt_rad(projected_gravity: np.ndarray) -> float:
    """Angle between the trunk's -z axis and gravity (0 upright, pi upside down); nan for a non-finite input."""
    gravity = np.asarray(projected_gravity, dtype=np.float64)
    if gravity.shape != (3,):
        raise ValueError(f"projected_gravity must have 3 entries, got shape {gravity.shape}")
    norm = float(np.linalg.norm(gravity))
    if not (math.isfinite(norm) and norm > 0):
        return math.nan
    return math.acos(max(-1.0, min(1.0, -gravity[2] / norm)))


def classify_posture(
    projected_gravity: np.ndarray, height: float | None = None, thresholds: PostureThresholds | None = None
) -> Posture:
    """The posture from the gravity direction in the trunk frame and, optionally, the trunk height (m).

    Orientation alone cannot tell standing from lying on the belly: without ``height`` a right-side-up trunk
    is ``UPRIGHT``. A non-finite gravity vector raises ``ValueError``.
    """
    limits = thresholds or PostureThresholds()
    tilt = tilt_rad(projected_gravity)
    if math.isnan(tilt):
        raise ValueError(f"projected_gravity must be finite and non-zero, got {projected_gravity}")
    if tilt >= limits.back_tilt_rad:
        return Posture.BACK
    if tilt >= limits.upright_tilt_rad:
        return Posture.SIDE
    if height is not None and height < limits.min_standing_height_m:
        return Posture.BELLY
    return Posture.UPRIGHT


def is_fallen(
    projected_gravity: np.ndarray, height: float | None = None, thresholds: PostureThresholds | None = None
) -> bool:
    """Whether the robot is anything but ``UPRIGHT`` (see :func:`classify_posture`)."""
    return classify_posture(projected_gravity, height, thresholds) is not Posture.UPRIGHT


class Phase(enum.Enum):
    IDLE = "idle"
    FOLD = "fold"
    TUCK = "tuck"
    RISE = "rise"
    HOLD = "hold"
    DONE = "done"
    REFUSED = "refused"


@dataclass(frozen=True)
class StandUpConfig:
    """Poses, durations and limits of the stand-up (the PD gains are the contract's)."""

    tuck_pose: tuple[float, float, float] = (0.0, 1.25, -2.55)
    """Folded pose per leg: hip (outwards for left legs, mirrored for right), thigh, calf (rad). Feet under
    the hips, ~0.12 m below them: lifts the trunk slightly off the ground."""
    fold_duration_s: float = 0.3
    """Shortest time to first fold the calves and move the hips to the tuck, thighs held (s); 0 skips it.
    Folding first shortens the legs before the thighs swing, so fewer of them strike the ground and tip the
    trunk (emulator, 60 falls: 60/60 stood with it, 55/60 without)."""
    tuck_duration_s: float = 0.6
    """Shortest time from the measured pose to the tuck (s); longer when ``max_delta_per_tick`` demands it."""
    rise_duration_s: float = 1.2
    """Shortest time from the tuck to the default pose (s). A faster rise leaves the soft stance (contract
    PD) rocking: with 10% more mass and 10% weaker motors 0.8 s stood 16/40 in time, 1.2 s 40/40."""
    hold_duration_s: float = 0.2
    """Time at the default pose before ``done`` (s)."""
    max_delta_per_tick: float = 0.1
    """Largest change of any joint target from one tick to the next (rad)."""
    abort_tilt_rad: float = 1.0
    """Trunk tilt during the stand-up beyond which it aborts to refused (rad)."""
    use_soft_limits: bool = True
    """Clamp targets to the contract's soft joint limits (True) or its hard limits (False)."""
    postures: PostureThresholds = field(default_factory=PostureThresholds)
    """Thresholds of :func:`classify_posture`, used when starting."""

    def scaled_in_time(self, scale: float) -> StandUpConfig:
        """The same stand-up with every segment ``scale`` times as long (an emulator at speed s: ``1 / s``)."""
        if scale == 1.0:
            return self
        return replace(self, **{name: getattr(self, name) * scale for name in _DURATIONS})


_DURATIONS = ("fold_duration_s", "tuck_duration_s", "rise_duration_s", "hold_duration_s")


@dataclass(frozen=True)
class StandUpDecision:
    targets: np.ndarray | None
    """Joint targets to send (contract order, rad), or ``None``: send the damping command instead."""
    phase: Phase
    done: bool
    """Standing at the default pose after the hold: hand over to the policy."""
    refused: str | None
    """Why the controller will not (or no longer) command the robot, for the operator."""


# Min-jerk s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5 peaks at ds/dtau = 15/8.
_MIN_JERK_PEAK_SPEED = 1.875


def _min_jerk(tau: float) -> float:
    tau = min(max(tau, 0.0), 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


class StandUpController:
    """See the module docs. ``dt`` is the control period (s); the contract's ``policy_dt`` by default."""

    def __init__(self, contract: TaskContract, config: StandUpConfig | None = None, dt: float | None = None) -> None:
        self.contract = contract
        self.config = config or StandUpConfig()
        self.dt = contract.policy_dt if dt is None else dt
        if not (self.config.max_delta_per_tick > 0 and self.dt > 0):
            raise ValueError(f"max_delta_per_tick ({self.config.max_delta_per_tick}) and dt ({self.dt}) must be > 0")
        hard = np.asarray(contract.joint_pos_limits, dtype=np.float64)
        limits = contract.soft_joint_pos_limits() if self.config.use_soft_limits else hard
        self.lower, self.upper = limits[:, 0].copy(), limits[:, 1].copy()
        self._hard_lower, self._hard_upper = hard[:, 0].copy(), hard[:, 1].copy()
        self.default_pose = np.asarray(contract.default_joint_pos, dtype=np.float64)
        self.tuck_pose = self._clamp(self._per_joint(self.config.tuck_pose))
        self._is_thigh = np.array([name.split("_")[1] == "thigh" for name in contract.joint_names])
        self._phase = Phase.IDLE
        self._reason: str | None = None
        self._segment: tuple[float, float, np.ndarray, np.ndarray] = (0.0, 1.0, self.default_pose, self.default_pose)
        self._previous = self.default_pose.copy()
        """The last target sent (at the start: the measured pose inside the hard limits)."""

    def _per_joint(self, per_leg: tuple[float, float, float]) -> np.ndarray:
        """Per-leg (hip, thigh, calf) values in contract order; hips mirrored for the right legs."""
        parts = {"hip": 0, "thigh": 1, "calf": 2}
        out = []
        for name in self.contract.joint_names:
            leg, part = name.split("_")[:2]
            value = per_leg[parts[part]]
            out.append(-value if part == "hip" and leg.endswith("R") else value)
        return np.asarray(out, dtype=np.float64)

    def _clamp(self, pose: np.ndarray) -> np.ndarray:
        return np.clip(pose, self.lower, self.upper)

    @property
    def phase(self) -> Phase:
        return self._phase

    def start(self, now: float, joint_pos: np.ndarray, projected_gravity: np.ndarray) -> StandUpDecision:
        """Begin a stand-up from the measured state (or refuse it); returns the first tick's decision."""
        bad = _check_state(joint_pos, projected_gravity, self.contract.num_joints)
        if bad:
            return self._refuse(bad)
        posture = classify_posture(projected_gravity, None, self.config.postures)
        if posture is Posture.BACK:
            return self._refuse("robot is on its back: turn the robot over onto its belly, then start again")
        if posture is Posture.SIDE:
            tilt = math.degrees(tilt_rad(projected_gravity))
            return self._refuse(
                f"robot is on its side (tilted {tilt:.0f} deg): turn it onto its belly, then start again"
            )
        self._reason = None
        measured = np.asarray(joint_pos, dtype=np.float64)
        self._previous = np.clip(measured, self._hard_lower, self._hard_upper)
        measured = self._clamp(measured)
        if self.config.fold_duration_s > 0:
            folded = np.where(self._is_thigh, measured, self.tuck_pose)
            self._begin(Phase.FOLD, now, measured, folded)
        else:
            self._begin(Phase.TUCK, now, measured, self.tuck_pose)
        return self.step(now, joint_pos, projected_gravity)

    def step(self, now: float, joint_pos: np.ndarray, projected_gravity: np.ndarray) -> StandUpDecision:
        """This tick's targets from the time ``now`` (s, the clock of :meth:`start`) and the measured state."""
        if self._phase is Phase.IDLE:
            return StandUpDecision(None, Phase.IDLE, False, None)
        if self._phase is Phase.REFUSED:
            return StandUpDecision(None, Phase.REFUSED, False, self._reason)
        bad = _check_state(joint_pos, projected_gravity, self.contract.num_joints)
        if bad:
            return self._refuse(bad)
        tilt = tilt_rad(projected_gravity)
        if tilt > self.config.abort_tilt_rad:
            return self._refuse(
                f"aborted in {self._phase.value}: trunk tilted {math.degrees(tilt):.0f} deg (limit "
                f"{math.degrees(self.config.abort_tilt_rad):.0f} deg); put the robot on its belly and start again"
            )
        if self._phase is Phase.DONE:
            return self._emit(self.default_pose, done=True)
        start_time, duration, start_pose, end_pose = self._segment
        reference = start_pose + _min_jerk((now - start_time) / duration) * (end_pose - start_pose)
        targets = self._limited(reference)
        # A late tick may have been rate limited short of the waypoint: the phase ends only on it.
        if now - start_time >= duration and np.abs(targets - end_pose).max() < 1e-9:
            if self._phase is Phase.FOLD:
                self._begin(Phase.TUCK, now, end_pose, self.tuck_pose)
            elif self._phase is Phase.TUCK:
                self._begin(Phase.RISE, now, self.tuck_pose, self.default_pose)
            elif self._phase is Phase.RISE:
                self._begin(Phase.HOLD, now, self.default_pose, self.default_pose)
            else:
                self._phase = Phase.DONE
                return self._emit(self.default_pose, done=True)
        return self._emit(targets, done=False)

    def _begin(self, phase: Phase, now: float, start_pose: np.ndarray, end_pose: np.ndarray) -> None:
        cfg = self.config
        shortest = {
            Phase.FOLD: cfg.fold_duration_s,
            Phase.TUCK: cfg.tuck_duration_s,
            Phase.RISE: cfg.rise_duration_s,
        }.get(phase, cfg.hold_duration_s)
        distance = float(np.abs(end_pose - start_pose).max())
        # Stretch the move so its peak speed keeps to max_delta_per_tick at the nominal tick.
        duration = max(shortest, _MIN_JERK_PEAK_SPEED * distance * self.dt / cfg.max_delta_per_tick, 1e-9)
        self._phase = phase
        self._segment = (now, duration, start_pose.copy(), end_pose.copy())

    def _limited(self, reference: np.ndarray) -> np.ndarray:
        previous, d = self._previous, self.config.max_delta_per_tick
        reference = np.clip(reference, previous - d, previous + d)
        # A joint measured outside the soft limits at the start comes in at the rate limit, never by a jump.
        lower = np.maximum(self._hard_lower, np.minimum(self.lower, previous))
        upper = np.minimum(self._hard_upper, np.maximum(self.upper, previous))
        return np.clip(reference, lower, upper)

    def _emit(self, targets: np.ndarray, done: bool) -> StandUpDecision:
        targets = self._limited(targets)
        self._previous = targets
        return StandUpDecision(targets.copy(), self._phase, done, None)

    def _refuse(self, reason: str) -> StandUpDecision:
        self._phase, self._reason = Phase.REFUSED, reason
        return StandUpDecision(None, Phase.REFUSED, False, reason)


def _check_state(joint_pos: np.ndarray, projected_gravity: np.ndarray, num_joints: int) -> str:
    """'' for a usable measurement, else what is wrong with it."""
    joints = np.asarray(joint_pos, dtype=np.float64)
    gravity = np.asarray(projected_gravity, dtype=np.float64)
    if joints.shape != (num_joints,):
        return f"joint_pos must have {num_joints} entries, got shape {joints.shape}"
    if gravity.shape != (3,):
        return f"projected_gravity must have 3 entries, got shape {gravity.shape}"
    if not np.isfinite(joints).all():
        return f"non-finite joint_pos {joints}"
    if not (np.isfinite(gravity).all() and np.linalg.norm(gravity) > 0):
        return f"non-finite or zero projected_gravity {gravity}"
    return ""
