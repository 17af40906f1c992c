"""``policy_node``: runs an exported policy on the A1 behind the safety layer (``ros2 run robot_bridge policy_node``).

Subscribes (sensor QoS: best effort, depth 1):
  ``joint_states`` (sensor_msgs/JointState, matched by joint name), ``imu`` (sensor_msgs/Imu: orientation and
  angular velocity of the trunk), ``odom`` (nav_msgs/Odometry: body-frame twist; only for contracts that
  observe ``base_lin_vel``), ``cmd_vel`` (geometry_msgs/Twist: linear.x, linear.y, angular.z).
Publishes:
  ``joint_targets`` (std_msgs/Float64MultiArray: position targets in the contract's joint order, ros2_control
  forward-command convention), ``~/status`` (std_msgs/String ``"<status>: <reason>"`` on every change, latched).
Services: ``~/estop`` and ``~/reset`` (std_srvs/Trigger).

The control timer runs at the contract's policy rate in the control callback group. A tick uses the newest
joint state if it is under 1 ms old; otherwise it is completed by the next joint state to arrive, or after
``state_wait_s`` without one, so the command leaves right after fresh state arrives and nothing blocks a thread.
The joint-state subscription and the wait's deadline timer share the control group (one tick at a time); the
other sensors have their own group. All logic lives in :class:`~robot_bridge.control.PolicyLoop` and
:class:`~robot_bridge.safety.SafetyController`.
"""

from __future__ import annotations

import math
import time
from collections import deque

import rclpy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import Trigger

from a1_contract import DEFAULT_VARIANT, ContractError, get_contract
from deploy.runner import PolicyFileError
from robot_bridge import qos
from robot_bridge.control import PolicyLoop, load_policy
from robot_bridge.observation import MissingJointsError
from robot_bridge.params import Param, declare
from robot_bridge.safety import SafetyConfig, SafetyController, SafetyStatus
from robot_bridge.spin import spin_until_shutdown

_SAFETY = SafetyConfig()
_FRESH_S = 0.001
"""A joint state younger than this (s) is used by a timer tick at once; an older one waits for the next."""
PARAMS: tuple[Param, ...] = (
    Param("policy_path", "", "ONNX policy file written by deploy.export (required)."),
    Param("contract_variant", DEFAULT_VARIANT, "Contract this robot implements; a policy for another is refused."),
    Param("rate_hz", 0.0, "Control rate (Hz); 0 = the contract's policy rate. Emulator sped up by s: s times it."),
    Param("state_wait_s", 0.01, "Longest wait (s) of a tick for a fresh joint state (2 periods at 200 Hz); 0: none."),
    Param("initial_command", [0.0, 0.0, 0.0], "Velocity command [vx m/s, vy m/s, yaw rate rad/s] until cmd_vel."),
    Param("watchdog_timeout_s", _SAFETY.watchdog_timeout_s, "State older than this (s): damping command."),
    Param("max_delta_per_tick", _SAFETY.max_delta_per_tick, "Largest joint target change per tick (rad)."),
    Param("soft_start_speed", _SAFETY.soft_start_speed, "Joint speed of the soft start to the default pose (rad/s)."),
    Param("soft_start_hold_s", _SAFETY.soft_start_hold_s, "Time at the default pose before the policy runs (s)."),
    Param("fall_tilt_rad", _SAFETY.fall_tilt_rad, "Trunk tilt from upright that counts as a fall (rad)."),
    Param("use_soft_limits", _SAFETY.use_soft_limits, "Clamp targets to the soft (true) or hard (false) limits."),
)


class PolicyNode(Node):
    """See the module docs. ``kwargs`` go to :class:`rclpy.node.Node` (``parameter_overrides``, ``context``...)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("policy_node", **kwargs)
        p = declare(self, PARAMS)
        try:
            if not p["policy_path"]:
                raise PolicyFileError("parameter policy_path is required (an ONNX file from deploy.export)")
            runner = load_policy(p["policy_path"], get_contract(p["contract_variant"]))
        except (ContractError, PolicyFileError) as exc:  # ContractMismatchError is a ContractError
            self.get_logger().fatal(f"refusing to start: {exc}")
            self.destroy_node()
            raise
        contract = runner.contract
        rate_hz = p["rate_hz"] or contract.policy_rate_hz
        config = SafetyConfig(**{name: p[name] for name in SafetyConfig.__dataclass_fields__})
        self.loop = PolicyLoop(runner, SafetyController(contract, config, dt=1.0 / rate_hz), p["initial_command"])
        self._last_status = None
        self._tick_started: int | None = None
        """Monotonic ns of the timer tick that waits for a fresh joint state, or None."""
        self.timing: deque[tuple[int, int, int, int]] = deque(maxlen=100_000)
        """Per published command: timer tick, arrival of the joint state used, publish (monotonic ns), and the
        tick's CPU time (thread ns: observation, policy, safety, publish)."""

        control, sensors = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR, callback_group=control)
        self.create_subscription(Imu, "imu", self._on_imu, qos.SENSOR, callback_group=sensors)
        self.create_subscription(Twist, "cmd_vel", self._on_twist, qos.SENSOR, callback_group=sensors)
        if self.loop.assembler.needs_base_lin_vel:
            self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR, callback_group=sensors)
        self._targets_pub = self.create_publisher(Float64MultiArray, "joint_targets", qos.COMMAND)
        self._status_pub = self.create_publisher(String, "~/status", qos.STATUS)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._message = Float64MultiArray()
        self._message.layout.dim = [MultiArrayDimension(label="joints", size=contract.num_joints, stride=1)]
        self.create_timer(1.0 / rate_hz, self._on_timer, callback_group=control)
        self._deadline = None
        if p["state_wait_s"] > 0:
            self._deadline = self.create_timer(p["state_wait_s"], self._tick, callback_group=control)
            self._deadline.cancel()
        self.get_logger().info(
            f"policy {p['policy_path']} ({runner.algo}, contract {contract.name} {contract.hash}) at {rate_hz:g} Hz; "
            f"joint order {list(contract.joint_names)}"
        )

    # ---- subscriptions: convert and store, nothing else ----------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        try:
            self.loop.on_joints(time.monotonic(), msg.name, msg.position, msg.velocity)
        except MissingJointsError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=1.0)
            return
        if self._tick_started is not None:  # a tick is waiting for exactly this
            self._tick()

    def _on_imu(self, msg: Imu) -> None:
        o, w = msg.orientation, msg.angular_velocity
        self.loop.on_imu(time.monotonic(), (o.x, o.y, o.z, o.w), (w.x, w.y, w.z))

    def _on_odom(self, msg: Odometry) -> None:
        v = msg.twist.twist.linear
        self.loop.on_body_velocity(time.monotonic(), (v.x, v.y, v.z))

    def _on_twist(self, msg: Twist) -> None:
        self.loop.on_command(msg.linear.x, msg.linear.y, msg.angular.z)

    # ---- services -----------------------------------------------------------------------------
    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.loop.safety.estop("e-stop service called")
        self.get_logger().warning("E-STOP latched (damping); call ~/reset to clear")
        response.success, response.message = True, "e-stop latched"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was = self.loop.safety.reset()
        self.get_logger().info(f"reset: cleared {was.value if was else 'nothing'}; soft start follows")
        response.success, response.message = True, f"cleared {was.value if was else 'nothing'}"
        return response

    # ---- the control tick ---------------------------------------------------------------------
    def _on_timer(self) -> None:
        if self._tick_started is not None:  # the previous tick is still waiting: it runs now, late
            self._tick()
        self._tick_started = time.monotonic_ns()
        if self._deadline is not None and not time.monotonic() - self.loop.joints_arrival < _FRESH_S:
            self._deadline.reset()  # wait for the next joint state, at most state_wait_s
            return
        self._tick()

    def _tick(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        started, self._tick_started = self._tick_started, None
        if started is None:
            return
        cpu = time.thread_time_ns()
        decision = self.loop.tick(time.monotonic())
        if decision.command is not None:
            self._message.data = decision.command.tolist()
            self._targets_pub.publish(self._message)
            arrival = int(self.loop.joints_stamp * 1e9) if math.isfinite(self.loop.joints_stamp) else -1
            self.timing.append((started, arrival, time.monotonic_ns(), time.thread_time_ns() - cpu))
        if decision.status is not self._last_status:
            self._last_status = decision.status
            text = f"{decision.status.value}: {decision.reason}"
            if decision.status in (SafetyStatus.RUNNING, SafetyStatus.SOFT_START):
                self.get_logger().info(text)
            else:  # rclpy wants one severity per call site
                self.get_logger().warning(text)
            self._status_pub.publish(String(data=text))


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = PolicyNode()
    except (ContractError, PolicyFileError) as exc:
        print(f"policy_node: refusing to start: {exc}", flush=True)
        rclpy.try_shutdown()
        return 1
    return spin_until_shutdown(node)


if __name__ == "__main__":
    raise SystemExit(main())
