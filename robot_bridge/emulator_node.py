"""``emulator_node``: the emulated A1 as a ROS 2 robot (``ros2 run robot_bridge emulator_node``).

Physics runs at the contract's ``sim_dt`` in real time (or ``speed`` times it), paced by the wall clock: a
physics thread wakes every ``publish_every`` steps, runs the steps that are due and publishes the state once.
It publishes what a real A1 driver would, with the same frames and units (sensor QoS):

* ``joint_states`` (sensor_msgs/JointState): names = the contract's joint names; position (rad), velocity
  (rad/s), effort (applied joint torque, N m);
* ``imu`` (sensor_msgs/Imu, frame ``imu`` = trunk frame): orientation (trunk in the world), angular velocity
  (rad/s), linear acceleration (specific force, m/s^2);
* ``foot_contacts`` (std_msgs/Float64MultiArray): normal force (N) at the FL, FR, RL, RR feet;
* ``odom`` (nav_msgs/Odometry, ``odom`` -> ``trunk``): the trunk pose and velocity in place of an estimator's; the
  twist is the trunk COM velocity in the trunk frame, the simulator's ``base_lin_vel``. With ``sensor_noise``,
  its velocities and orientation carry the noise of the matching training observations, as ``imu`` does.

The ground truth (never noisy: a referee's motion capture, which a real robot lacks) is published in both
interfaces (``ros``: with the stamp of the measured sample of the same instant, before its ``joint_states``):

* ``ground_truth/odom`` (nav_msgs/Odometry): as ``odom``, without noise;
* ``ground_truth/joint_states`` (sensor_msgs/JointState) and ``ground_truth/imu`` (sensor_msgs/Imu): as
  ``joint_states`` and ``imu``, without noise; published only while something subscribes to them.

It applies the newest ``joint_targets`` (std_msgs/Float64MultiArray, contract order) through the contract's
PD (MuJoCo position actuators), after ``action_latency_s``. Dynamics gap parameters: see
:class:`~robot_bridge.emulator.DynamicsGap`.

Parameter ``interface``: ``"ros"`` (the above) or ``"udp"``: the robot is driven like the real A1, over its
low-level UDP protocol on ``udp_ip:udp_port`` (:class:`~robot_bridge.emulator_udp.UdpEmulatedA1`; the
``a1_driver`` node talks to it), and none of ``joint_states``, ``imu``, ``foot_contacts``, ``odom`` or
``joint_targets`` exist here (the ``ground_truth/*`` topics do). Service ``~/reset`` (std_srvs/Trigger) stands the
robot up again at the default pose.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from std_srvs.srv import Trigger

from a1_contract import DEFAULT_VARIANT, get_contract, robot
from robot_bridge import qos
from robot_bridge.emulator import DynamicsGap, EmulatedA1, Sensors
from robot_bridge.emulator_udp import BRAKE_KD, STATE_RATE_HZ, UdpEmulatedA1
from robot_bridge.messages import fill_imu, fill_joints
from robot_bridge.params import Param, declare, from_fields
from robot_bridge.spin import run_node

PARAMS: tuple[Param, ...] = (
    Param("contract_variant", DEFAULT_VARIANT, "Contract whose robot side (model, gains, rates) is emulated."),
    Param("speed", 1.0, "Simulated seconds per wall-clock second (1 = real time)."),
    Param("publish_every", 1, "Physics steps (of sim_dt) between state publications."),
    Param("max_catch_up_steps", 20, "Most physics steps per callback; beyond, the emulator falls behind real time."),
    # the dynamics gap: one parameter per DynamicsGap field (friction None is -1 here)
    *from_fields(DynamicsGap(), defaults={"friction": -1.0}, notes={"friction": "A negative value stands for None."}),
    Param("interface", "ros", "How the robot is driven: 'ros' (topics) or 'udp' (the A1 low-level protocol)."),
    Param("udp_ip", "127.0.0.1", "interface=udp: address the emulated A1 binds (the real one is 192.168.123.10)."),
    Param("udp_port", 8007, "interface=udp: UDP port (the real A1's is 8007; 0 = any free port)."),
    Param("udp_state_rate_hz", STATE_RATE_HZ, "interface=udp: LowState packets per second."),
    Param("brake_kd", BRAKE_KD, "interface=udp: damping (N m s/rad) of a motor in mode 0x00 (brake)."),
    Param("foot_force_scale", 1.0, "interface=udp: Newtons per raw footForce count in LowState."),
)
INTERFACES = ("ros", "udp")


class EmulatorNode(Node):
    """See the module docs. ``kwargs`` go to :class:`rclpy.node.Node`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("emulator_node", **kwargs)
        p = declare(self, PARAMS)
        contract = get_contract(p["contract_variant"])
        gap = DynamicsGap(
            mass_scale=p["mass_scale"],
            friction=p["friction"] if p["friction"] >= 0 else None,
            motor_strength=p["motor_strength"],
            action_latency_s=p["action_latency_s"],
            sensor_noise=p["sensor_noise"],
            seed=p["seed"],
        )
        if p["interface"] not in INTERFACES:
            self.get_logger().fatal(f"parameter interface must be one of {INTERFACES}, got {p['interface']!r}")
            self.destroy_node()
            raise ValueError(f"emulator_node: parameter interface must be one of {INTERFACES}, got {p['interface']!r}")
        self.interface = p["interface"]
        self.udp: UdpEmulatedA1 | None = None
        """interface=udp: the UDP front end, which owns the robot and its physics thread."""
        self._truth_pub = self.create_publisher(Odometry, "ground_truth/odom", qos.SENSOR)
        self._truth_joint_pub = self.create_publisher(JointState, "ground_truth/joint_states", qos.SENSOR)
        self._truth_imu_pub = self.create_publisher(Imu, "ground_truth/imu", qos.SENSOR)
        self._odom_msg, self._truth_msg = _odometry(), _odometry()
        self._truth_joint_msg = JointState(name=list(contract.joint_names))
        self._truth_imu_msg = Imu()
        self._truth_imu_msg.header.frame_id = "imu"
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._speed = p["speed"]
        self.rejected_targets = 0
        if self.interface == "udp":
            self.udp = UdpEmulatedA1(
                contract, gap, bind=(p["udp_ip"], p["udp_port"]), speed=self._speed,
                state_rate_hz=p["udp_state_rate_hz"], brake_kd=p["brake_kd"], foot_force_scale=p["foot_force_scale"],
                max_catch_up_steps=p["max_catch_up_steps"], on_sensors=self._publish_ground_truth,
            )  # fmt: skip
            self.robot = self.udp.robot
            self._lock = self.udp.lock
            ip, port = self.udp.address
            self.get_logger().info(f"emulated A1 ({contract.name}) on UDP {ip}:{port} at {self._speed:g}x, gap {gap}")
            return
        self.robot = EmulatedA1(contract, gap)
        self._lock = threading.Lock()
        self._max_steps = max(1, p["max_catch_up_steps"])
        self._steps = 0
        self._t0 = time.monotonic()
        self.steps_behind = 0
        """Physics steps skipped in wall-clock terms because a callback came too late (slow machine)."""

        self._joint_pub = self.create_publisher(JointState, "joint_states", qos.SENSOR)
        self._imu_pub = self.create_publisher(Imu, "imu", qos.SENSOR)
        self._odom_pub = self.create_publisher(Odometry, "odom", qos.SENSOR)
        self._feet_pub = self.create_publisher(Float64MultiArray, "foot_contacts", qos.SENSOR)
        self.create_subscription(Float64MultiArray, "joint_targets", self._on_targets, qos.COMMAND)
        self._joint_msg = JointState(name=list(contract.joint_names))
        self._imu_msg = Imu()
        self._imu_msg.header.frame_id = "imu"
        self._feet_msg = Float64MultiArray()
        self._feet_msg.layout.dim = [MultiArrayDimension(label=",".join(robot.FOOT_NAMES), size=4, stride=1)]
        self._period = contract.sim_dt * max(1, p["publish_every"]) / self._speed
        # The physics loop is a thread of its own rather than an executor timer: at 200 Hz, rclpy's executor
        # costs several times the physics (measured: 46% of a core vs 29% single-threaded vs ~10% here).
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._run, name="emulator_physics", daemon=True)
        self._loop.start()
        self.get_logger().info(f"emulated A1 ({contract.name}) at {self._speed:g}x real time, gap {gap}")

    @property
    def steps_behind_wall_clock(self) -> int:
        """Physics steps the emulator fell behind the wall clock (either interface)."""
        return self.udp.counters["steps_behind"] if self.udp is not None else self.steps_behind

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Stand the robot up again at the default pose, at rest (an episode reset for emulated fine-tuning).

        A real robot has no such thing: on the A1, someone lifts it and the controller stands it up. In the UDP
        interface the robot holds the default pose until the next LowCmd arrives.
        """
        if self.udp is not None:
            self.udp.reset()
        else:
            with self._lock:
                self.robot.reset()
        self.get_logger().info("reset: standing at the default pose")
        response.success, response.message = True, "standing at the default pose"
        return response

    def _on_targets(self, msg: Float64MultiArray) -> None:
        try:
            with self._lock:
                self.robot.set_targets(np.asarray(msg.data))
        except ValueError as exc:
            self.rejected_targets += 1
            self.get_logger().error(f"ignoring joint targets: {exc}", throttle_duration_sec=1.0)

    def _run(self) -> None:
        next_wake = time.monotonic()
        while not self._stop.is_set():
            self._advance()
            next_wake = max(next_wake + self._period, time.monotonic())
            self._stop.wait(next_wake - time.monotonic())

    def destroy_node(self) -> None:
        if getattr(self, "udp", None) is not None:
            self.udp.stop()
        with contextlib.suppress(AttributeError):  # ros interface only (and only once started)
            self._stop.set()
            if self._loop.is_alive() and self._loop is not threading.current_thread():
                self._loop.join(timeout=2.0)
        super().destroy_node()

    def _advance(self) -> None:
        """Run the physics steps due by the wall clock, then publish the state once."""
        sim_dt = self.robot.contract.sim_dt
        due = int((time.monotonic() - self._t0) * self._speed / sim_dt) - self._steps
        if due > self._max_steps:  # too late to catch up: let simulated time fall behind the wall clock
            self.steps_behind += due - self._max_steps
            self._t0 += (due - self._max_steps) * sim_dt / self._speed
            due = self._max_steps
        if due <= 0:
            return
        with self._lock:
            self.robot.step(due)
            sensors, truth = self.robot.sense_pair()
        self._steps += due
        self._publish(sensors, truth)

    def _publish(self, s: Sensors, truth: Sensors) -> None:
        stamp = self.get_clock().now().to_msg()
        self._imu_pub.publish(
            fill_imu(self._imu_msg, stamp, s.orientation_wxyz, s.angular_velocity, s.linear_acceleration)
        )
        odom = _fill_odometry(self._odom_msg, stamp, s)
        self._odom_pub.publish(odom)
        self._publish_ground_truth(truth, stamp, odom if truth is s else None)

        self._feet_msg.data = s.foot_forces.tolist()
        self._feet_pub.publish(self._feet_msg)

        # Joint states last: a policy node that ticks on their arrival then has this sample's IMU and odometry
        # (and ground truth).
        self._joint_pub.publish(fill_joints(self._joint_msg, stamp, s.joint_pos, s.joint_vel, s.joint_effort))

    def _publish_ground_truth(self, truth: Sensors, stamp: Time | None = None, odom: Odometry | None = None) -> None:
        """The ``ground_truth/*`` topics; interface=udp: called in the emulator's thread, the only topics on ROS.

        ``odom``: a message already filled from ``truth`` (without sensor noise, the measured sample is the truth)."""
        if stamp is None:
            stamp = self.get_clock().now().to_msg()
        self._truth_pub.publish(odom if odom is not None else _fill_odometry(self._truth_msg, stamp, truth))
        if self._truth_imu_pub.get_subscription_count():
            self._truth_imu_pub.publish(fill_imu(self._truth_imu_msg, stamp, truth.orientation_wxyz,
                                                 truth.angular_velocity, truth.linear_acceleration))  # fmt: skip
        if self._truth_joint_pub.get_subscription_count():
            self._truth_joint_pub.publish(fill_joints(self._truth_joint_msg, stamp, truth.joint_pos, truth.joint_vel,
                                                      truth.joint_effort))  # fmt: skip


def _odometry() -> Odometry:
    msg = Odometry(child_frame_id=robot.BASE_BODY)
    msg.header.frame_id = "odom"
    return msg


def _fill_odometry(msg: Odometry, stamp: Time, s: Sensors) -> Odometry:
    """Trunk pose in the world (``odom`` frame) and velocity in the trunk frame (the COM's: ``base_lin_vel``)."""
    msg.header.stamp = stamp
    pose = msg.pose.pose
    pose.position.x, pose.position.y, pose.position.z = s.position.tolist()
    o = pose.orientation
    o.w, o.x, o.y, o.z = s.orientation_wxyz.tolist()
    twist = msg.twist.twist
    twist.linear.x, twist.linear.y, twist.linear.z = s.linear_velocity.tolist()
    twist.angular.x, twist.angular.y, twist.angular.z = s.angular_velocity.tolist()
    return msg


def main(args: list[str] | None = None) -> int:
    return run_node(EmulatorNode, "emulator_node", (OSError, ValueError), args)


if __name__ == "__main__":
    raise SystemExit(main())
