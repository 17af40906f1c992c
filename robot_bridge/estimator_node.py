"""``estimator`` node: the A1 body velocity from the IMU, leg kinematics and foot contacts, on ROS 2.

A real A1 measures no body velocity; the policy observes it (``base_lin_vel``) and the fine-tuning reward needs
it. This node runs :class:`~robot_bridge.estimator.BodyVelocityEstimator` on what the A1 driver (or the
emulator) publishes, all with sensor QoS:

Subscribes: ``joint_states`` (sensor_msgs/JointState, matched by joint name), ``imu`` (sensor_msgs/Imu:
orientation trunk -> world, gyro and specific force in the trunk frame), ``foot_contacts``
(std_msgs/Float64MultiArray: normal force N at FL, FR, RL, RR).
Publishes: ``odom`` (nav_msgs/Odometry, frame ``odom``, child ``trunk``, stamped like the newest joint sample):
``twist.linear`` = the trunk COM velocity in the trunk frame (the simulator's ``base_lin_vel``) with its
covariance, ``twist.angular`` = the gyro, ``pose.position.z`` = the trunk height above the stance feet,
``pose.orientation`` = the IMU's (x, y are not estimated: zero, with covariance -1); ``~/height``
(std_msgs/Float64, m, for fall detection).

Run: ``python -m robot_bridge.estimator_node --ros-args -p publish_rate_hz:=0.0`` (the emulator's ground truth
is on ``ground_truth/odom``, so nothing else may publish ``odom``).

``publish_rate_hz`` 0 publishes after every joint state (the A1 driver's 200-500 Hz, faster than the policy);
otherwise a timer does. Times are the messages' header stamps (``foot_contacts`` has none: it takes the newest
IMU/joint stamp); a message without a stamp takes the arrival time. Rejected samples (NaN, missing joints,
time out of order) are counted and logged (throttled); the last good estimate keeps being published.
"""

from __future__ import annotations

import time

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64, Float64MultiArray

from a1_contract import DEFAULT_VARIANT, get_contract, robot
from robot_bridge import qos
from robot_bridge.estimator import BodyVelocityEstimator, EstimatorConfig
from robot_bridge.observation import JointMap, MissingJointsError
from robot_bridge.params import Param, declare
from robot_bridge.spin import run_node

_DEFAULTS = EstimatorConfig()
_DOCS = EstimatorConfig.field_docs()
_TUNABLE = tuple(name for name, value in vars(_DEFAULTS).items() if isinstance(value, float))
"""The filter's noise and contact parameters (every float field of EstimatorConfig) are node parameters."""
PARAMS: tuple[Param, ...] = (
    Param("contract_variant", DEFAULT_VARIANT, "Contract whose joint names the joint_states are matched to."),
    Param("publish_rate_hz", 0.0, "odom publication rate (Hz); 0 = after every joint_states message."),
    *(Param(name, getattr(_DEFAULTS, name), _DOCS[name]) for name in _TUNABLE),
)


class EstimatorNode(Node):
    """See the module docs. ``kwargs`` go to :class:`rclpy.node.Node` (``parameter_overrides``, ``context``...)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("estimator", **kwargs)
        p = declare(self, PARAMS)
        contract = get_contract(p["contract_variant"])
        config = EstimatorConfig(**{name: p[name] for name in _TUNABLE})
        self.estimator = BodyVelocityEstimator(contract.joint_names, config)
        self._joints = JointMap(contract.joint_names)
        self._stamp = float("nan")
        """Newest IMU/joint time (s), given to foot contacts."""
        self._orientation = None
        self._joint_stamp = None
        self.rejected_messages = 0

        self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR)
        self.create_subscription(Imu, "imu", self._on_imu, qos.SENSOR)
        self.create_subscription(Float64MultiArray, "foot_contacts", self._on_feet, qos.SENSOR)
        self._odom_pub = self.create_publisher(Odometry, "odom", qos.SENSOR)
        self._height_pub = self.create_publisher(Float64, "~/height", qos.SENSOR)
        self._odom = Odometry(child_frame_id=robot.BASE_BODY)
        self._odom.header.frame_id = "odom"
        self._odom.pose.covariance[0] = self._odom.pose.covariance[7] = -1.0  # x, y: not estimated
        self._publish_on_joints = p["publish_rate_hz"] <= 0
        if not self._publish_on_joints:
            self.create_timer(1.0 / p["publish_rate_hz"], self._publish)
        rate = "every joint state" if self._publish_on_joints else f"{p['publish_rate_hz']:g} Hz"
        self.get_logger().info(f"body-velocity estimator ({contract.name}) publishing odom at {rate}; {config}")

    # ---- subscriptions ----------------------------------------------------------------------------------
    def _on_imu(self, msg: Imu) -> None:
        o, w, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
        t = self._time(msg)
        accepted = self.estimator.update_imu(t, (o.x, o.y, o.z, o.w), (w.x, w.y, w.z), (a.x, a.y, a.z))
        if accepted:
            self._orientation = o
        self._check(accepted, "imu")

    def _on_feet(self, msg: Float64MultiArray) -> None:
        stamp = self._stamp if np.isfinite(self._stamp) else time.monotonic()
        try:
            self._check(self.estimator.update_contacts(stamp, msg.data), "foot_contacts")
        except ValueError as exc:
            self._check(False, "foot_contacts", str(exc))

    def _on_joints(self, msg: JointState) -> None:
        t = self._time(msg)
        try:
            q = self._joints.reorder(msg.name, msg.position, "position")
            dq = self._joints.reorder(msg.name, msg.velocity, "velocity")
        except MissingJointsError as exc:
            self._check(False, "joint_states", str(exc))
            return
        accepted = self.estimator.update_joints(t, q, dq)
        self._check(accepted, "joint_states")
        if accepted:
            self._joint_stamp = msg.header.stamp if (msg.header.stamp.sec or msg.header.stamp.nanosec) else None
        if self._publish_on_joints:
            self._publish()

    # ---- output -------------------------------------------------------------------------------------------
    def _publish(self) -> None:
        estimate = self.estimator.estimate()
        if not estimate.ready:
            return
        odom = self._odom
        # The estimate is of the newest joint sample's time: its stamp (the clock's now if it had none).
        odom.header.stamp = self._joint_stamp or self.get_clock().now().to_msg()
        odom.pose.pose.position.z = float(estimate.height)
        if self._orientation is not None:
            odom.pose.pose.orientation = self._orientation
        linear = odom.twist.twist.linear
        linear.x, linear.y, linear.z = (float(v) for v in estimate.velocity)
        gyro = self.estimator.angular_velocity
        angular = odom.twist.twist.angular
        angular.x, angular.y, angular.z = (float(v) for v in gyro)
        covariance = np.zeros((6, 6))
        covariance[:3, :3] = estimate.covariance
        odom.twist.covariance = covariance.ravel().tolist()
        self._odom_pub.publish(odom)
        self._height_pub.publish(Float64(data=float(estimate.height)))

    # ---- helpers ------------------------------------------------------------------------------------------
    def _time(self, msg) -> float:
        stamp = msg.header.stamp
        t = stamp.sec + 1e-9 * stamp.nanosec if (stamp.sec or stamp.nanosec) else time.monotonic()
        self._stamp = t
        return t

    def _check(self, accepted: bool, topic: str, reason: str = "") -> None:
        if accepted:
            return
        self.rejected_messages += 1
        why = reason or f"non-finite values or time out of order; counters {dict(self.estimator.counters)}"
        self.get_logger().warning(f"rejected a {topic} message: {why}", throttle_duration_sec=1.0)


def main(args: list[str] | None = None) -> int:
    return run_node(EstimatorNode, "estimator", (), args)


if __name__ == "__main__":
    raise SystemExit(main())
