"""``a1_driver``: the real A1 as a ROS 2 robot, through its low-level UDP protocol (``ros2 run robot_bridge
a1_driver``; ``dry_run`` is true by default: nothing is sent until it is set false).

The UDP loop is :class:`~robot_bridge.a1_driver.A1Driver`, in a thread of its own at ``rate_hz`` (500 Hz); this
node only converts. It publishes exactly what ``emulator_node`` publishes, with the same topics, types, frames,
units and joint names (sensor QoS), so the policy node and the estimator cannot tell them apart:

* ``joint_states`` (sensor_msgs/JointState): the contract's joint names; position (rad), velocity (rad/s),
  effort (the motors' ``tauEst``, N m);
* ``imu`` (sensor_msgs/Imu, frame ``imu`` = trunk frame): orientation, angular velocity (rad/s), linear
  acceleration (specific force, m/s^2);
* ``foot_contacts`` (std_msgs/Float64MultiArray): force (N) at the FL, FR, RL, RR feet: raw counts times
  ``foot_force_scale`` (unverified, see ``unitree_mapping.FOOT_FORCE_NEWTONS_PER_UNIT``), 0 at or below
  ``foot_force_threshold`` counts;
* ``~/diagnostics`` (std_msgs/String, JSON of the driver's counters, 1 Hz) and ``~/status`` (std_msgs/String
  ``"<status>: <reason>"`` on every change, latched, like the policy node's).

It subscribes ``joint_targets`` (std_msgs/Float64MultiArray, contract order, rad: what the policy node
publishes). Service ``~/reset`` (std_srvs/Trigger) clears a latched torque/power guard. There is no ``odom``:
a real robot has no ground truth (the estimator publishes it).
"""

from __future__ import annotations

import json
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import Trigger

from a1_contract import DEFAULT_VARIANT, get_contract, robot
from robot_bridge import qos
from robot_bridge.a1_driver import A1Driver
from robot_bridge.a1_driver_types import DriverConfig, DriverStatus, RobotState
from robot_bridge.messages import fill_imu, fill_joints
from robot_bridge.params import Param, Timing, declare, from_fields
from robot_bridge.spin import run_node
from robot_bridge.unitree_mapping import FOOT_FORCE_NEWTONS_PER_UNIT, foot_slots

_D = DriverConfig()
PARAMS: tuple[Param, ...] = (
    Param("contract_variant", DEFAULT_VARIANT, "Contract of the robot (joint order, gains, limits)."),
    *from_fields(_D, notes={"robot_port": "The A1's low-level UDP port."}),  # one parameter per DriverConfig field
    Param("foot_force_scale", FOOT_FORCE_NEWTONS_PER_UNIT, "Newtons per raw footForce count (calibrate!)."),
    Param("foot_force_threshold", 0.0, "Raw footForce counts at or below which a foot publishes 0 N."),
    Param("publish_every", 2, "Publish every n-th new LowState (2 at 500 Hz: 250 Hz)."),
)
TIMING = Timing(
    rates=("rate_hz",), durations=("command_timeout_s", "state_timeout_s", "guard_persist_s", "state_period_ticks")
)
"""The wall-clock parameters (scaled for an emulator slower than real time: :func:`robot_bridge.params.at_speed`)."""


class A1DriverNode(Node):
    """See the module docs. ``kwargs`` go to :class:`rclpy.node.Node`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("a1_driver", **kwargs)
        p = declare(self, PARAMS)
        try:
            self.contract = contract = get_contract(p["contract_variant"])
            config = DriverConfig(**{name: p[name] for name in DriverConfig.__dataclass_fields__})
        except ValueError as exc:  # ContractError is a ValueError too
            self.get_logger().fatal(f"refusing to start: {exc}")
            self.destroy_node()
            raise
        self._foot_slots = foot_slots(robot.FOOT_NAMES)
        self._foot_scale, self._foot_threshold = p["foot_force_scale"], p["foot_force_threshold"]
        self._publish_every, self._new_states = max(1, p["publish_every"]), 0

        self._joint_pub = self.create_publisher(JointState, "joint_states", qos.SENSOR)
        self._imu_pub = self.create_publisher(Imu, "imu", qos.SENSOR)
        self._feet_pub = self.create_publisher(Float64MultiArray, "foot_contacts", qos.SENSOR)
        self._diag_pub = self.create_publisher(String, "~/diagnostics", qos.STATUS)
        self._status_pub = self.create_publisher(String, "~/status", qos.STATUS)
        self.create_subscription(Float64MultiArray, "joint_targets", self._on_targets, qos.COMMAND)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._joint_msg = JointState(name=list(contract.joint_names))
        self._imu_msg = Imu()
        self._imu_msg.header.frame_id = "imu"
        self._feet_msg = Float64MultiArray()
        self._feet_msg.layout.dim = [MultiArrayDimension(label=",".join(robot.FOOT_NAMES), size=4, stride=1)]

        self.driver = A1Driver(config, contract, on_state=self._on_state)
        try:
            self.driver.start()
        except OSError as exc:
            self.get_logger().fatal(str(exc))
            self.destroy_node()
            raise
        if self.driver.realtime_refused:
            self.get_logger().warning(f"UDP loop keeps ordinary scheduling: {self.driver.realtime_refused}")
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_timer(0.1, self._publish_status_changes)
        mode = "DRY RUN (nothing is sent)" if config.dry_run else "SENDING"
        self.get_logger().info(
            f"A1 driver {mode}: {config.local_ip}:{self.driver.local_address[1]} -> {config.robot_ip}:"
            f"{config.robot_port} at {config.rate_hz:g} Hz; joint order {list(contract.joint_names)}"
        )

    def destroy_node(self) -> None:
        if hasattr(self, "driver"):
            self.driver.stop()
        super().destroy_node()

    def _on_targets(self, msg: Float64MultiArray) -> None:
        try:
            self.driver.set_targets(np.asarray(msg.data), time.monotonic())
        except ValueError as exc:
            self.get_logger().error(f"ignoring joint targets: {exc}", throttle_duration_sec=1.0)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        fault = self.driver.clear_fault()
        self.get_logger().info(f"reset: cleared {fault or 'nothing'}")
        response.success, response.message = True, f"cleared {fault or 'nothing'}"
        return response

    def _on_state(self, s: RobotState) -> None:
        """In the driver's thread: publish every ``publish_every``-th state (joint states last, as the emulator)."""
        self._new_states += 1
        if self._new_states % self._publish_every:
            return
        stamp = self.get_clock().now().to_msg()
        self._imu_pub.publish(fill_imu(self._imu_msg, stamp, s.quaternion_wxyz, s.gyroscope, s.accelerometer))

        raw = s.foot_force_raw[self._foot_slots].astype(np.float64)
        self._feet_msg.data = np.where(raw > self._foot_threshold, raw * self._foot_scale, 0.0).tolist()
        self._feet_pub.publish(self._feet_msg)

        self._joint_pub.publish(fill_joints(self._joint_msg, stamp, s.q, s.dq, s.tau_est))

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(String(data=json.dumps(self.driver.snapshot())))

    def _publish_status_changes(self) -> None:
        changes = self.driver.status_changes
        while changes:
            _, status, reason = changes.popleft()
            text = f"{status.value}: {reason}"
            if status is DriverStatus.RUNNING:
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)
            self._status_pub.publish(String(data=text))


def main(args: list[str] | None = None) -> int:
    return run_node(A1DriverNode, "a1_driver", (OSError, ValueError), args)


if __name__ == "__main__":
    raise SystemExit(main())
