"""``emulator_node``: the emulated A1 as a ROS 2 robot (``ros2 run robot_bridge emulator_node``).

Physics runs at the contract's ``sim_dt`` in real time (or ``speed`` times it), paced by the wall clock: a
physics thread wakes every ``publish_every`` steps, runs the steps that are due and publishes the state once.
It publishes what a real A1 driver would, with the same frames and units (sensor QoS):

* ``joint_states`` (sensor_msgs/JointState): names = the contract's joint names; position (rad), velocity
  (rad/s), effort (applied joint torque, N m);
* ``imu`` (sensor_msgs/Imu, frame ``imu`` = trunk frame): orientation (trunk in the world), angular velocity
  (rad/s), linear acceleration (specific force, m/s^2);
* ``foot_contacts`` (std_msgs/Float64MultiArray): normal force (N) at the FL, FR, RL, RR feet;
* ``odom`` (nav_msgs/Odometry, ``odom`` -> ``trunk``): ground truth; the twist is the trunk COM velocity in
  the trunk frame, the simulator's ``base_lin_vel``.

It applies the newest ``joint_targets`` (std_msgs/Float64MultiArray, contract order) through the contract's
PD (MuJoCo position actuators), after ``action_latency_s``. Dynamics gap parameters: see
:class:`~robot_bridge.emulator.DynamicsGap`.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension

from a1_contract import DEFAULT_VARIANT, get_contract, robot
from robot_bridge import qos
from robot_bridge.emulator import DynamicsGap, EmulatedA1, Sensors
from robot_bridge.params import Param, declare
from robot_bridge.spin import spin_until_shutdown

PARAMS: tuple[Param, ...] = (
    Param("contract_variant", DEFAULT_VARIANT, "Contract whose robot side (model, gains, rates) is emulated."),
    Param("speed", 1.0, "Simulated seconds per wall-clock second (1 = real time)."),
    Param("publish_every", 1, "Physics steps (of sim_dt) between state publications."),
    Param("max_catch_up_steps", 20, "Most physics steps per callback; beyond, the emulator falls behind real time."),
    Param("mass_scale", 1.0, "Trunk mass and inertia multiplier."),
    Param("friction", -1.0, "Foot-ground friction coefficient; negative = the contract's (as in training)."),
    Param("motor_strength", 1.0, "Multiplier of PD torque and effort limit."),
    Param("action_latency_s", 0.0, "Delay from a target arriving to the motors applying it (s)."),
    Param("sensor_noise", 0.0, "Uniform sensor noise, as a multiple of the contract's training noise."),
    Param("seed", 0, "Seed of the sensor noise."),
)


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
        self.robot = EmulatedA1(contract, gap)
        self._speed = p["speed"]
        self._max_steps = max(1, p["max_catch_up_steps"])
        self._steps = 0
        self._t0 = time.monotonic()
        self.steps_behind = 0
        """Physics steps skipped in wall-clock terms because a callback came too late (slow machine)."""
        self.rejected_targets = 0

        self._joint_pub = self.create_publisher(JointState, "joint_states", qos.SENSOR)
        self._imu_pub = self.create_publisher(Imu, "imu", qos.SENSOR)
        self._odom_pub = self.create_publisher(Odometry, "odom", qos.SENSOR)
        self._feet_pub = self.create_publisher(Float64MultiArray, "foot_contacts", qos.SENSOR)
        self.create_subscription(Float64MultiArray, "joint_targets", self._on_targets, qos.COMMAND)
        self._joint_msg = JointState(name=list(contract.joint_names))
        self._imu_msg = Imu()
        self._imu_msg.header.frame_id = "imu"
        self._odom_msg = Odometry(child_frame_id=robot.BASE_BODY)
        self._odom_msg.header.frame_id = "odom"
        self._feet_msg = Float64MultiArray()
        self._feet_msg.layout.dim = [MultiArrayDimension(label=",".join(robot.FOOT_NAMES), size=4, stride=1)]
        self._period = contract.sim_dt * max(1, p["publish_every"]) / self._speed
        # The physics loop is a thread of its own rather than an executor timer: at 200 Hz, rclpy's executor
        # costs several times the physics (measured: 46% of a core vs 29% single-threaded vs ~10% here).
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._run, name="emulator_physics", daemon=True)
        self._loop.start()
        self.get_logger().info(f"emulated A1 ({contract.name}) at {self._speed:g}x real time, gap {gap}")

    def _on_targets(self, msg: Float64MultiArray) -> None:
        try:
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
        self.robot.step(due)
        self._steps += due
        self._publish(self.robot.sense())

    def _publish(self, s: Sensors) -> None:
        stamp = self.get_clock().now().to_msg()
        imu = self._imu_msg
        imu.header.stamp = stamp
        w, x, y, z = s.orientation_wxyz.tolist()
        imu.orientation.w, imu.orientation.x, imu.orientation.y, imu.orientation.z = w, x, y, z
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = s.angular_velocity.tolist()
        acc = imu.linear_acceleration
        acc.x, acc.y, acc.z = s.linear_acceleration.tolist()
        self._imu_pub.publish(imu)

        odom = self._odom_msg
        odom.header.stamp = stamp
        pose = odom.pose.pose
        pose.position.x, pose.position.y, pose.position.z = s.position.tolist()
        pose.orientation = imu.orientation
        twist = odom.twist.twist
        twist.linear.x, twist.linear.y, twist.linear.z = s.linear_velocity.tolist()
        twist.angular = imu.angular_velocity
        self._odom_pub.publish(odom)

        self._feet_msg.data = s.foot_forces.tolist()
        self._feet_pub.publish(self._feet_msg)

        # Joint states last: a policy node that ticks on their arrival then has this sample's IMU and odometry.
        j = self._joint_msg
        j.header.stamp = stamp
        j.position, j.velocity, j.effort = s.joint_pos.tolist(), s.joint_vel.tolist(), s.joint_effort.tolist()
        self._joint_pub.publish(j)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = EmulatorNode()
    return spin_until_shutdown(node)


if __name__ == "__main__":
    raise SystemExit(main())
