"""Body-velocity estimator of the A1 from the IMU, leg kinematics and foot contacts: a Kalman filter, pure numpy.

The policy observes ``base_lin_vel`` (the trunk COM velocity in the trunk frame, see
``a1_common.task.observations.body_state``) and a real A1 measures no velocity. The filter's state is the trunk
origin's velocity ``v`` in the trunk frame and the accelerometer bias ``b`` (both 3-vectors):

* predict, with the IMU (accelerometer specific force ``a`` at the trunk origin, gyro ``w``, gravity direction
  ``g`` from the orientation): ``dv/dt = a - b + 9.81 g - w x v`` (the frame rotates), ``db/dt = noise``;
* update, with each stance foot's leg odometry: a foot on the ground does not move, so
  ``v = -(J(q) dq + w x p_foot + w_foot x r g)`` (the last term: the foot sphere of radius ``r`` rolls about
  its lowest point, with ``w_foot`` the calf's angular velocity). Its noise is the joint-velocity noise through
  the Jacobian plus a slip term, inflated right after touch-down and when the force is low (about to lift off);
  Mahalanobis gating drops slipping feet.

Stance is the foot force with hysteresis (on above ``contact_on_n``, off below ``contact_off_n``). The trunk
height above the stance feet is a complementary filter of the feet's depth below the trunk and ``v``. The
estimate is the COM velocity ``v + w x TRUNK_COM``: the point the simulator's ``base_lin_vel`` refers to.

Samples with NaN/inf are rejected and counted (``counters``), the last good estimate stays; time going
backwards is rejected (or, if far back, taken as a clock reset); a gap longer than ``max_dt_s`` is not
integrated: the velocity covariance is inflated instead. Wrong shapes raise :class:`ValueError`.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from a1_contract import robot
from robot_bridge.kinematics import LegKinematics
from robot_bridge.observation import projected_gravity_from_xyzw

GRAVITY = 9.81
"""m/s^2, standard gravity (MuJoCo's default ``opt.gravity`` magnitude, the emulator's)."""
_EYE3 = np.eye(3)
_DIAG_V = (np.arange(3), np.arange(3))
_DIAG_B = (np.arange(3, 6), np.arange(3, 6))


@dataclass(frozen=True)
class EstimatorConfig:
    """Noise and contact parameters of :class:`BodyVelocityEstimator` (defaults tuned on the emulator)."""

    contact_on_n: float = 15.0
    """Foot force (N) above which a swinging foot counts as in stance."""
    contact_off_n: float = 5.0
    """Foot force (N) below which a stance foot counts as swinging."""
    full_trust_force_n: float = 30.0
    """Stance force (N) from which a foot's velocity is fully trusted; below, its noise grows as 1/force."""
    touchdown_window_s: float = 0.02
    """After a touch-down, the foot's measurement noise is inflated for this long (impact, sliding)."""
    transition_noise_scale: float = 25.0
    """Variance multiplier of a foot's measurement in the touch-down window."""
    accel_noise: float = 0.1
    """Accelerometer + gravity-direction noise density (m/s^2 / sqrt(Hz)): process noise of the velocity. The
    emulator's accelerometer is noise-free (its orientation is not); a real IMU on a walking robot vibrates:
    raise this (0.3-1) if the estimate is noisy on the robot, at the cost of trusting slipping feet more."""
    accel_bias_walk: float = 0.05
    """Random walk of the accelerometer bias (m/s^2 / sqrt(s))."""
    joint_vel_noise: float = 0.9
    """Joint velocity noise (rad/s, std), mapped through the foot Jacobian (default: the training noise,
    uniform +-1.5 rad/s, std 0.87, which the emulator adds at ``sensor_noise=1``)."""
    gyro_noise: float = 0.1
    """Gyroscope noise (rad/s, std), mapped through the foot position."""
    foot_velocity_noise: float = 0.1
    """Foot slip and model error (m/s, std) of one stance foot's velocity."""
    gate_chi2: float = 25.0
    """Mahalanobis distance squared (3 dof) above which a foot's measurement is dropped as slip."""
    max_dt_s: float = 0.05
    """Longest time step integrated; a longer gap (or a clock reset) inflates the covariance instead."""
    initial_velocity_std: float = 0.2
    """m/s, velocity std at start and after a time jump."""
    initial_bias_std: float = 0.1
    """m/s^2, accelerometer bias std at start."""
    height_time_constant_s: float = 0.05
    """Time constant (s) with which the height follows the stance feet."""
    com_offset: tuple[float, float, float] = robot.TRUNK_COM
    """Trunk COM in the trunk frame (m): the point whose velocity is estimated."""

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's docstring (one line): the node's parameter descriptions."""
        from a1_common.cli import field_docs

        return field_docs(cls)


@dataclass(frozen=True)
class BodyVelocityEstimate:
    """The filter's output at ``time``."""

    time: float
    velocity: np.ndarray
    """(3,) trunk COM velocity in the trunk frame (m/s), as the simulator's ``base_lin_vel``."""
    height: float
    """Trunk origin height above the stance feet's ground (m); NaN until a foot has been in stance."""
    covariance: np.ndarray
    """(3, 3) covariance of ``velocity`` ((m/s)^2)."""
    stance: np.ndarray
    """(4,) bool, the feet (FL, FR, RL, RR) the filter takes as being on the ground."""
    ready: bool
    """The filter has had IMU and joint samples (before that, velocity is zero with a large covariance)."""


class BodyVelocityEstimator:
    """Kalman filter of the body velocity; feed ``update_*`` as samples arrive (times in seconds, one clock)."""

    def __init__(self, joint_names: Sequence[str], config: EstimatorConfig | None = None) -> None:
        self.config = config or EstimatorConfig()
        self.kinematics = LegKinematics(joint_names)
        self.num_joints = self.kinematics.num_joints
        self.counters: collections.Counter[str] = collections.Counter()
        """Rejected samples by input (``rejected:imu`` ...), ``out_of_order``, ``time_jumps``, ``gated_feet``."""
        self.reset()

    def reset(self) -> None:
        """Back to rest: zero velocity and bias with the initial covariance, no samples seen."""
        cfg = self.config
        self._x = np.zeros(6)
        self._P = np.diag([cfg.initial_velocity_std**2] * 3 + [cfg.initial_bias_std**2] * 3)
        self._t: float | None = None
        self._imu: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # gravity dir, gyro, specific force
        self._joints_seen = False
        self._stance = np.zeros(4, dtype=bool)
        self._touchdown = np.full(4, -np.inf)
        self._forces = np.zeros(4)
        self._height = float("nan")
        self._height_time = -np.inf

    # ---- inputs ---------------------------------------------------------------------------------------
    def update_imu(self, t: float, quat_xyzw: Sequence[float], gyro: Sequence[float], acc: Sequence[float]) -> bool:
        """IMU sample: orientation trunk->world (x, y, z, w), gyro (rad/s) and specific force (m/s^2), trunk frame."""
        quat, gyro, acc = _vector(quat_xyzw, 4, "quat_xyzw"), _vector(gyro, 3, "gyro"), _vector(acc, 3, "acc")
        gravity = projected_gravity_from_xyzw(quat)
        if not (_finite(t, gyro, acc, gravity) and self._advance(t)):
            return self._reject("imu")
        self._imu = (gravity, gyro, acc)
        return True

    def update_contacts(self, t: float, forces: Sequence[float]) -> bool:
        """Foot normal forces (N) at FL, FR, RL, RR; stance switches with hysteresis."""
        forces = _vector(forces, 4, "forces")
        if not _finite(t, forces):
            return self._reject("contacts")
        cfg = self.config
        down = ~self._stance & (forces > cfg.contact_on_n)
        self._stance = (self._stance & (forces >= cfg.contact_off_n)) | down
        self._touchdown[down] = t
        self._forces = forces
        return True

    def update_joints(self, t: float, q: Sequence[float], dq: Sequence[float]) -> bool:
        """Joint positions (rad) and velocities (rad/s) in contract order: the leg-odometry update."""
        q, dq = _vector(q, self.num_joints, "q"), _vector(dq, self.num_joints, "dq")
        if not (_finite(t, q, dq) and self._advance(t)):
            return self._reject("joints")
        self._joints_seen = True
        if self._imu is not None and self._stance.any():
            self._correct(t, q, dq)
        return True

    @property
    def angular_velocity(self) -> np.ndarray:
        """(3,) the newest accepted gyro sample (rad/s, trunk frame); zero before the first."""
        return self._imu[1].copy() if self._imu is not None else np.zeros(3)

    def estimate(self) -> BodyVelocityEstimate:
        """The current estimate (the last good one if samples were rejected since)."""
        omega = self._imu[1] if self._imu is not None else np.zeros(3)
        return BodyVelocityEstimate(
            time=float("nan") if self._t is None else self._t,
            velocity=self._x[:3] + _skew(omega) @ np.asarray(self.config.com_offset),
            height=self._height,
            covariance=self._P[:3, :3].copy(),
            stance=self._stance.copy(),
            ready=self._imu is not None and self._joints_seen,
        )

    # ---- the filter ---------------------------------------------------------------------------------------
    def _advance(self, t: float) -> bool:
        """Predict to time ``t`` with the held IMU sample; False if ``t`` is out of order."""
        if self._t is None:
            self._t = t
            return True
        dt = t - self._t
        if dt < 0.0 and dt > -self.config.max_dt_s:
            self.counters["out_of_order"] += 1
            return False
        if dt > self.config.max_dt_s or dt < 0.0:  # a gap or a clock reset: nothing to integrate over
            self.counters["time_jumps"] += 1
            self._P[_DIAG_V] += self.config.initial_velocity_std**2
        elif dt > 0.0 and self._imu is not None:
            self._predict(dt)
        self._t = t
        return True

    def _predict(self, dt: float) -> None:
        cfg = self.config
        gravity, omega, acc = self._imu
        v, bias = self._x[:3], self._x[3:]
        omega_skew = _skew(omega)
        self._x[:3] = v + dt * (acc - bias + GRAVITY * gravity - omega_skew @ v)
        F = np.eye(6)
        F[:3, :3] -= dt * omega_skew
        F[:3, 3:] = -dt * _EYE3
        self._P = F @ self._P @ F.T
        self._P[_DIAG_V] += cfg.accel_noise**2 * dt
        self._P[_DIAG_B] += cfg.accel_bias_walk**2 * dt
        if np.isfinite(self._height):
            self._height -= dt * float(gravity @ v)  # g points down: g . v is the sink rate

    def _correct(self, t: float, q: np.ndarray, dq: np.ndarray) -> None:
        cfg = self.config
        gravity, omega, _ = self._imu
        kin = self.kinematics
        feet, jac = kin.forward(q)
        foot_omega = omega + kin.calf_angular_velocities(q, dq)
        # (a x b) for rows a: b x a = -(a x b), written with skew matrices (np.cross costs ~10x more here).
        rolling = -(foot_omega @ _skew(robot.FOOT_RADIUS * gravity).T)
        leg_velocity = -(np.einsum("lij,lj->li", jac, dq[kin.leg_joints]) + feet @ _skew(omega).T + rolling)
        depth = feet @ gravity + robot.FOOT_RADIUS  # trunk origin height above each foot's ground point
        stance = np.flatnonzero(self._stance)
        jac, feet = jac[stance], feet[stance]
        # Per-foot noise: joint velocity noise through J, gyro noise through p (cov of w x p: |p|^2 I - p p^T), slip.
        R = cfg.joint_vel_noise**2 * jac @ jac.transpose(0, 2, 1)
        R -= cfg.gyro_noise**2 * feet[:, :, None] * feet[:, None, :]
        R += (cfg.gyro_noise**2 * np.einsum("li,li->l", feet, feet) + cfg.foot_velocity_noise**2)[:, None, None] * _EYE3
        span = cfg.full_trust_force_n - cfg.contact_off_n
        trust = np.minimum(np.maximum((self._forces[stance] - cfg.contact_off_n) / span, 0.05), 1.0)
        scale = 1.0 / trust  # low force: lifting off (np.clip costs several times more on 4 values)
        scale[t - self._touchdown[stance] < cfg.touchdown_window_s] *= cfg.transition_noise_scale
        R *= scale[:, None, None]
        innovation = leg_velocity[stance] - self._x[:3]
        distance = np.einsum("li,lij,lj->l", innovation, np.linalg.inv(self._P[:3, :3] + R), innovation)
        keep = distance <= cfg.gate_chi2
        if not keep.all():
            self.counters["gated_feet"] += int((~keep).sum())
            R, innovation = R[keep], innovation[keep]
        if len(R):
            # The kept feet all measure v directly (H = [I 0]): fused in information form, they are one
            # measurement with information sum(R_i^-1), the same as updating with each foot in turn.
            weights = np.linalg.inv(R)
            fused_cov = np.linalg.inv(weights.sum(axis=0))
            fused_innovation = fused_cov @ np.einsum("lij,lj->i", weights, innovation)
            PHt = self._P[:, :3]
            K = np.linalg.solve(self._P[:3, :3] + fused_cov, PHt.T).T
            self._x += K @ fused_innovation
            self._P -= K @ PHt.T
            self._P = 0.5 * (self._P + self._P.T)
        measured_height = float(depth[stance].sum()) / len(stance)
        if not np.isfinite(self._height):
            self._height = measured_height
        else:
            elapsed = max(t - self._height_time, 0.0)
            self._height += elapsed / (elapsed + cfg.height_time_constant_s) * (measured_height - self._height)
        self._height_time = t

    def _reject(self, what: str) -> bool:
        self.counters[f"rejected:{what}"] += 1
        return False


def _vector(values: Sequence[float], size: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f"{name} must have {size} values, got shape {array.shape}")
    return array


def _finite(t: float, *arrays: np.ndarray) -> bool:
    return bool(np.isfinite(t)) and all(np.isfinite(a).all() for a in arrays)


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
