"""The emulated A1 without ROS: the simulator's MuJoCo model, one robot, stepped at ``sim_dt``, with a gap.

Built with the same model builder as the training env (:func:`a1_common.sim.a1_model.build_a1_spec`): the
same URDF, joints, DC motors (the contract's kp/kd, effort and velocity limits), the same contact settings.
Only sensors are added (an IMU site with an accelerometer), which do not change the dynamics. Body-frame
quantities come from :func:`a1_common.task.observations.body_state`, so the ground-truth body velocity is
exactly the simulator's ``base_lin_vel``.

The dynamics gap (:class:`DynamicsGap`) is what a policy must survive on the way to the robot.

Two ways to drive the motors. ``set_targets`` (the default, what the training env does): the contract's PD in
the DC motor model. ``set_motor_command`` (what the A1 firmware does with a ``LowCmd``, used by
:mod:`robot_bridge.emulator_udp`): per-joint ``tau = kp (q* - q) + kd (dq* - dq) + tau_ff`` with the gains the
command carries, written into the same actuators (``actuator_gainprm/biasprm``), so the damping term stays
implicit and the torque-speed and effort limits are the same. With the contract's gains the two give the same
torques.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, replace

import mujoco
import numpy as np

from a1_common.sim.a1_model import PD_GEAR, A1ModelInfo, build_a1_spec, default_qpos
from a1_common.task.observations import body_state
from a1_contract import TaskContract, robot


@dataclass(frozen=True)
class DynamicsGap:
    """Differences between the emulated robot and the training simulator (defaults: none)."""

    mass_scale: float = 1.0
    """Trunk mass (and inertia) multiplier."""
    friction: float | None = None
    """Foot-ground Coulomb friction; ``None``: the contract's static friction, as in training."""
    motor_strength: float = 1.0
    """Multiplier of the PD torque and of the effort limit (weak or strong motors)."""
    action_latency_s: float = 0.0
    """Delay (s of simulated time) between a target arriving and the motors applying it."""
    sensor_noise: float = 0.0
    """Uniform sensor noise as a multiple of the contract's training noise per term (1 = training noise)."""
    seed: int = 0
    """Seeds the sensor noise."""


@dataclass(frozen=True)
class MotorCommand:
    """One motor command per joint (contract order): ``tau = kp (q - q_meas) + kd (dq - dq_meas) + tau``."""

    q: np.ndarray
    """Position targets (rad)."""
    dq: np.ndarray
    """Velocity targets (rad/s)."""
    kp: np.ndarray
    """Stiffness (N m/rad), >= 0."""
    kd: np.ndarray
    """Damping (N m s/rad), >= 0."""
    tau: np.ndarray
    """Feed-forward torque (N m)."""

    def validated(self, num_joints: int) -> MotorCommand:
        """A float64 copy; ValueError naming the field for a wrong shape, a non-finite value or a negative gain."""
        fields = {}
        for name in ("q", "dq", "kp", "kd", "tau"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (num_joints,) or not np.isfinite(value).all():
                raise ValueError(f"motor command {name} must be {num_joints} finite values, got {value}")
            fields[name] = value.copy()
        if (fields["kp"] < 0).any() or (fields["kd"] < 0).any():
            raise ValueError(f"motor command gains must be >= 0, got kp {fields['kp']} kd {fields['kd']}")
        return MotorCommand(**fields)


@dataclass(frozen=True)
class Sensors:
    """What a real A1 driver would publish, plus the trunk's position and velocity. Joint arrays in contract order.

    A sample is either measured (the gap's sensor noise on joints, orientation, gyroscope and velocity) or the
    noise-free truth of the same instant (:meth:`EmulatedA1.sense_pair`)."""

    time: float
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    joint_effort: np.ndarray
    orientation_wxyz: np.ndarray
    """Trunk orientation in the world (MuJoCo order w, x, y, z)."""
    angular_velocity: np.ndarray
    """Trunk frame, rad/s (gyroscope)."""
    linear_acceleration: np.ndarray
    """Trunk frame specific force, m/s^2 (accelerometer: +9.81 z at rest)."""
    foot_forces: np.ndarray
    """Normal contact force at the FL, FR, RL, RR feet (N)."""
    position: np.ndarray
    """Trunk position in the world (m), never noisy."""
    linear_velocity: np.ndarray
    """Trunk COM velocity in the trunk frame (m/s): the simulator's ``base_lin_vel`` (measured: plus its noise)."""
    trunk_contact: bool
    """The trunk touches the ground (the training env's termination: a fall)."""


class EmulatedA1:
    """One A1 in MuJoCo. ``set_targets`` (rad, contract order), ``step(n)``, ``sense()`` (``sense_pair()``: and
    the noise-free truth)."""

    def __init__(self, contract: TaskContract, gap: DynamicsGap | None = None) -> None:
        self.contract = contract
        self.gap = gap or DynamicsGap()
        spec = build_a1_spec(contract, friction=self.gap.friction)
        trunk = spec.body(robot.BASE_BODY)
        trunk.add_site(name="imu", pos=[0.0, 0.0, 0.0], group=4)
        spec.add_sensor(name="imu_acc", type=mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                        objtype=mujoco.mjtObj.mjOBJ_SITE, objname="imu")  # fmt: skip
        self.model = spec.compile()
        self.info = A1ModelInfo.of(self.model, contract)
        self._acc = int(self.model.sensor_adr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SENSOR, "imu_acc")])
        self._apply_gap()
        # The position-actuator parameters (after the gap), restored whenever set_targets takes over again.
        self._position_gainprm = self.model.actuator_gainprm.copy()
        self._position_biasprm = self.model.actuator_biasprm.copy()
        self._back_emf = np.asarray(contract.effort_limit) / np.asarray(contract.velocity_limit)
        self._gravity = self.model.opt.gravity.copy()
        self.motor_command: MotorCommand | None = None
        """The motor command being applied, or None in position-actuator mode (``set_targets``)."""
        self.data = mujoco.MjData(self.model)
        self._rng = np.random.default_rng(self.gap.seed)
        noise = {t.name: t.noise * self.gap.sensor_noise for t in contract.obs_terms}
        self._noise = {k: noise.get(k, 0.0) for k in ("joint_pos", "joint_vel", "base_ang_vel", "base_lin_vel",
                                                       "projected_gravity")}  # fmt: skip
        self._contact_threshold = contract.terminations.base_contact_threshold
        self.trunk_contacts = 0
        """Physics steps with the trunk on the ground since the last reset."""
        self.reset()

    def _apply_gap(self) -> None:
        apply_gap(self.model, self.info.trunk_body, self.gap)  # friction: already in the spec

    def reset(self) -> None:
        """Standing at the default pose at the initial height, targets = default pose."""
        self.model.opt.gravity[:] = self._gravity
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = default_qpos(self.model, self.contract, self.info)
        self.data.ctrl[: self.contract.num_joints] = self.contract.default_joint_pos
        self._use_position_actuators()
        self._pending: collections.deque[tuple[float, np.ndarray | MotorCommand]] = collections.deque()
        self.trunk_contacts = 0
        mujoco.mj_forward(self.model, self.data)

    def hang(self, height: float = 1.0) -> None:
        """Hang the robot in the air, at rest (gravity off, trunk at ``height`` m): Unitree asks for a hung-up
        robot before low-level control, and a leg moved there moves no other joint. ``reset`` undoes it."""
        self.model.opt.gravity[:] = 0.0
        self.data.qpos[2] = height
        self.data.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def set_targets(self, targets: np.ndarray) -> None:
        """Joint targets (rad, contract order); applied ``action_latency_s`` of simulated time from now."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (self.contract.num_joints,) or not np.isfinite(targets).all():
            raise ValueError(f"targets must be {self.contract.num_joints} finite values, got {targets}")
        self._pending.append((self.data.time + self.gap.action_latency_s, targets))

    def set_motor_command(self, command: MotorCommand) -> None:
        """Per-joint motor law (contract order), applied ``action_latency_s`` from now; see :class:`MotorCommand`.

        It holds until the next ``set_motor_command``, ``set_targets`` (back to the contract's PD) or ``reset``.
        """
        command = command.validated(self.contract.num_joints)
        self._pending.append((self.data.time + self.gap.action_latency_s, command))

    def _use_position_actuators(self) -> None:
        self.model.actuator_gainprm[:] = self._position_gainprm
        self.model.actuator_biasprm[:] = self._position_biasprm
        self.motor_command = None

    def _apply(self, command: np.ndarray | MotorCommand) -> None:
        if isinstance(command, np.ndarray):
            if self.motor_command is not None:
                self._use_position_actuators()
            self.data.ctrl[: self.contract.num_joints] = command
            return
        # The DC motor's PD actuators (gear G: joint torque = G * force, see a1_common.sim.a1_model.add_dc_motors) get
        # the command's law: torque = ctrl + (-kp) q + (c - kd) dq, scaled by motor_strength as the model's gains are;
        # the back-EMF actuators and the effort clamp stay, so the motor keeps its torque-speed limit.
        strength = self.gap.motor_strength
        m, n, g = self.model, self.contract.num_joints, PD_GEAR
        c = self._back_emf
        m.actuator_gainprm[:n, 0] = strength / g
        m.actuator_biasprm[:n, 0] = 0.0
        m.actuator_biasprm[:n, 1] = -strength * command.kp / g**2
        m.actuator_biasprm[:n, 2] = strength * (c - command.kd) / g**2
        self.data.ctrl[:n] = command.kp * command.q + command.kd * command.dq + command.tau
        self.motor_command = command

    def step(self, n: int = 1) -> None:
        """``n`` physics steps of ``sim_dt``, each applying the newest target whose delay has passed."""
        threshold = self._contact_threshold
        for _ in range(n):
            while self._pending and self._pending[0][0] <= self.data.time + 1e-12:
                self._apply(self._pending.popleft()[1])
            mujoco.mj_step(self.model, self.data)
            if self.data.sensordata[self.info.sensor_trunk_touch] > threshold:
                self.trunk_contacts += 1

    def sense(self) -> Sensors:
        """What the robot's sensors read now: the state with the gap's sensor noise (see :meth:`sense_pair`)."""
        return self.sense_pair()[0]

    def sense_pair(self) -> tuple[Sensors, Sensors]:
        """(measured, truth) of this instant, from one ``mj_forward``: ``measured`` is what :meth:`sense` returns,
        ``truth`` the same sample without sensor noise (a referee's motion capture). Without noise: one object."""
        d, info, noise = self.data, self.info, self._noise
        mujoco.mj_forward(self.model, d)  # sensors (contacts, accelerometer) of this state, not the step before
        qpos, qvel = d.qpos[None], d.qvel[None]
        body = body_state(qpos, qvel, self.model.body_ipos[info.trunk_body][None], info)
        truth = Sensors(
            time=self.time,
            joint_pos=body["joint_pos"][0],
            joint_vel=body["joint_vel"][0],
            joint_effort=d.sensordata[info.sensor_actuator_force].copy(),
            orientation_wxyz=body["quat"][0],
            angular_velocity=body["ang_vel_b"][0],
            linear_acceleration=d.sensordata[self._acc : self._acc + 3].copy(),
            foot_forces=d.sensordata[info.sensor_foot_touch].copy(),
            position=d.qpos[0:3].copy(),
            linear_velocity=body["lin_vel_b"][0],
            trunk_contact=bool(d.sensordata[info.sensor_trunk_touch] > self._contact_threshold),
        )
        if not any(width > 0 for width in noise.values()):
            return truth, truth
        quat = truth.orientation_wxyz.copy()
        if noise["projected_gravity"] > 0:  # a small random rotation of the measured orientation
            tilt = np.zeros(4)
            mujoco.mju_axisAngle2Quat(tilt, *_axis_angle(self._uniform(noise["projected_gravity"], 3)))
            mujoco.mju_mulQuat(quat, truth.orientation_wxyz, tilt)
        measured = replace(
            truth,
            joint_pos=truth.joint_pos + self._uniform(noise["joint_pos"], 12),
            joint_vel=truth.joint_vel + self._uniform(noise["joint_vel"], 12),
            orientation_wxyz=quat,
            angular_velocity=truth.angular_velocity + self._uniform(noise["base_ang_vel"], 3),
            linear_velocity=truth.linear_velocity + self._uniform(noise["base_lin_vel"], 3),
        )
        return measured, truth

    def _uniform(self, half_width: float, size: int) -> np.ndarray:
        return self._rng.uniform(-half_width, half_width, size) if half_width > 0 else np.zeros(size)


def apply_gap(model: mujoco.MjModel, trunk_body: int, gap: DynamicsGap) -> None:
    """The gap's trunk mass (and inertia) and motor strength on a compiled model (friction and latency are applied
    where the model is built and stepped)."""
    model.body_mass[trunk_body] *= gap.mass_scale
    model.body_inertia[trunk_body] *= gap.mass_scale
    # DC motor (PD and back-EMF actuators): force = gain * ctrl + bias1 * q + bias2 * dq; gains, clamps and the
    # joint's total-torque clamp all scale with the motor.
    model.actuator_gainprm[:, 0] *= gap.motor_strength
    model.actuator_biasprm[:, 1:3] *= gap.motor_strength
    model.actuator_forcerange *= gap.motor_strength
    model.jnt_actfrcrange *= gap.motor_strength


def _axis_angle(rotation_vector: np.ndarray) -> tuple[np.ndarray, float]:
    angle = float(np.linalg.norm(rotation_vector))
    return (rotation_vector / angle if angle > 0 else np.array([1.0, 0.0, 0.0])), angle
