"""``policy_node``: runs an exported policy on the A1 behind the safety layer (``ros2 run robot_bridge policy_node``).

Subscribes (sensor QoS: best effort, depth 1):
  ``joint_states`` (sensor_msgs/JointState, matched by joint name), ``imu`` (sensor_msgs/Imu: orientation and
  angular velocity of the trunk), ``odom`` (nav_msgs/Odometry: body-frame twist; only for contracts that
  observe ``base_lin_vel``), ``cmd_vel`` (geometry_msgs/Twist: linear.x, linear.y, angular.z).
Publishes:
  ``joint_targets`` (std_msgs/Float64MultiArray: position targets in the contract's joint order, ros2_control
  forward-command convention), ``~/status`` (std_msgs/String ``"<status>: <reason>"`` on every change, latched;
  ``"finished: <reason>"`` after :meth:`PolicyNode.finish`, the normal end of a run, at INFO).
Services: ``~/estop`` and ``~/reset`` (std_srvs/Trigger).

The control timer runs at the contract's policy rate in the control callback group. A tick uses the newest
joint state if it is under 0.25 ms old; otherwise it is completed by the next joint state to arrive, or after
``state_wait_s`` without one, so the command leaves right after fresh state arrives and nothing blocks a thread.
The joint-state subscription and the wait's deadline timer share the control group (one tick at a time); the
other sensors have their own group. All logic lives in :class:`~robot_bridge.control.PolicyLoop` and
:class:`~robot_bridge.safety.SafetyController`. The fine-tuning actor (``finetune.actor_node``) is this node with
another loop (``_make_loop``), more inputs and its own reaction to a fall (``_on_fallen``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

import numpy as np
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
from robot_bridge.params import Param, Timing, at_speed, declare, from_fields
from robot_bridge.realtime import DEFAULT_PRIORITY, check_priority, make_thread_realtime
from robot_bridge.safety import SafetyConfig, SafetyController, SafetyStatus
from robot_bridge.spin import run_node
from robot_bridge.standup import StandUpConfig, StandUpController

_SAFETY = SafetyConfig()
_FRESH_S = 0.00025
"""A joint state younger than this (s) is used by a timer tick at once; an older one waits for the next. The
state-to-command latency is at most this plus a tick's work (~0.4 ms here); waiting costs the command up to one
state period (5 ms at 200 Hz) after the timer, but what reaches the motors is never computed from an older state."""
PARAMS: tuple[Param, ...] = (
    Param("policy_path", "", "ONNX policy file written by deploy.export (required)."),
    Param("contract_variant", DEFAULT_VARIANT, "Contract this robot implements; a policy for another is refused."),
    Param("rate_hz", 0.0, "Control rate (Hz); 0 = the contract's policy rate. Emulator sped up by s: s times it."),
    Param("state_wait_s", 0.01, "Longest wait (s) of a tick for a fresh joint state (2 periods at 200 Hz); 0: none."),
    Param("initial_command", [0.0, 0.0, 0.0], "Velocity command [vx m/s, vy m/s, yaw rate rad/s] until cmd_vel."),
    Param(
        "realtime_priority",
        DEFAULT_PRIORITY,
        "SCHED_FIFO priority (1-99) of the thread that runs the control tick (with a single-threaded executor: "
        "all of its callbacks), so that no ordinary process preempts a tick; 0: ordinary scheduling. Needs root, "
        "CAP_SYS_NICE or an rtprio limit; without them a warning and ordinary scheduling (robot_bridge.realtime).",
    ),
    *from_fields(_SAFETY),  # the safety layer: one parameter per SafetyConfig field
    Param(
        "stand_up_time_scale",
        1.0,
        "Stand-up segment durations x this (robot_bridge.standup.StandUpConfig); an emulator at speed s: 1/s.",
    ),
    Param(
        "auto_stand_up",
        False,
        "After a fall, stand up from the belly (robot_bridge.standup) and soft-start "
        "again; on its back or side: refused, the operator turns it over and calls ~/stand_up.",
    ),
)

TIMING = Timing(
    rates=("rate_hz", "soft_start_speed"),
    durations=("watchdog_timeout_s", "state_wait_s", "soft_start_hold_s", "stand_up_time_scale"),
)
"""The wall-clock parameters (scaled for an emulator run slower than real time: :func:`params_at_speed`)."""


def params_at_speed(speed: float, values: dict, policy_rate_hz: float) -> dict:
    """The node's parameter overrides for an emulator at ``speed`` x real time (:func:`~robot_bridge.params.at_speed`);
    ``rate_hz`` 0 (the contract's rate, ``policy_rate_hz``) is made explicit first so that it scales too."""
    if speed == 1.0:
        return dict(values)
    return at_speed(PARAMS, TIMING, speed, {**values, "rate_hz": float(values.get("rate_hz") or policy_rate_hz)})


class PolicyNode(Node):
    """See the module docs. ``kwargs`` go to :class:`rclpy.node.Node` (``parameter_overrides``, ``context``...)."""

    PARAMS: tuple[Param, ...] = PARAMS
    """The node's parameters (a subclass adds its own: :mod:`finetune.actor_node`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("policy_node", **kwargs)
        p = self.params = declare(self, self.PARAMS)
        """Every parameter's value, read once at start (the parameters are read-only)."""
        self._realtime_threads: set[int] = set()
        """Threads that have run a tick (each is made real-time once: :meth:`_make_tick_thread_realtime`)."""
        try:
            self._realtime_priority = check_priority(p["realtime_priority"])
            if not p["policy_path"]:
                raise PolicyFileError("parameter policy_path is required (an ONNX file from deploy.export)")
            runner = load_policy(p["policy_path"], get_contract(p["contract_variant"]))
        except (ContractError, PolicyFileError, ValueError) as exc:  # ContractMismatchError is a ContractError
            self.get_logger().fatal(f"refusing to start: {exc}")
            self.destroy_node()
            raise
        contract = runner.contract
        rate_hz = p["rate_hz"] or contract.policy_rate_hz
        config = SafetyConfig(**{name: p[name] for name in SafetyConfig.__dataclass_fields__})
        safety = SafetyController(contract, config, dt=1.0 / rate_hz)
        self.loop = self._make_loop(p, runner, safety)
        self._last_status = None
        self._finished: str | None = None
        """The reason :meth:`finish` latched (None before): an e-stop with exactly this reason is a normal end."""
        self._tick_started: int | None = None
        """Monotonic ns of the timer tick that waits for a fresh joint state, or None."""
        self.timing: deque[tuple[int, int, int, int]] = deque(maxlen=100_000)
        """Per published command: timer tick, arrival of the joint state used, publish (monotonic ns), and the
        tick's CPU time (thread ns: observation, policy, safety, publish)."""

        control, sensors = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self._sensors = sensors
        """The callback group of every input but the joint states (a subclass adds its subscriptions to it)."""
        self._odom_subscribed = False
        self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR, callback_group=control)
        self.create_subscription(Imu, "imu", self._on_imu, qos.SENSOR, callback_group=sensors)
        self.create_subscription(Twist, "cmd_vel", self._on_twist, qos.SENSOR, callback_group=sensors)
        if self.loop.assembler.needs_base_lin_vel:
            self._subscribe_odom()
        self._targets_pub = self.create_publisher(Float64MultiArray, "joint_targets", qos.COMMAND)
        self._status_pub = self.create_publisher(String, "~/status", qos.STATUS)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/stand_up", self._on_stand_up)
        self._auto_stand_up = bool(p["auto_stand_up"])
        if not p["stand_up_time_scale"] > 0:
            raise ValueError(f"parameter stand_up_time_scale must be > 0, got {p['stand_up_time_scale']}")
        self._standup_config = StandUpConfig().scaled_in_time(p["stand_up_time_scale"])
        self._standup = None
        self._standup_failed = False
        """The last stand-up was refused: not retried automatically (the operator calls ~/stand_up)."""
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
            self.loop.on_joints(time.monotonic(), msg.name, msg.position, msg.velocity, msg.effort)
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

    # ---- stand-up -----------------------------------------------------------------------------
    def _on_stand_up(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._last_status is SafetyStatus.RUNNING:
            response.success, response.message = False, "the policy is running; e-stop first"
            return response
        response.success = self._start_stand_up(time.monotonic())
        response.message = "standing up" if response.success else "no state to start from (see ~/status)"
        return response

    def _start_stand_up(self, now: float) -> bool:
        state = self.loop.state()
        if state is None:
            return False
        self._standup = StandUpController(self.loop.contract, self._standup_config, dt=self.loop.safety.dt)
        self._standup_failed = False
        self._report_stand_up(self._standup.start(now, state.joint_pos, state.projected_gravity))
        return True

    def _stand_up_tick(self, now: float) -> bool:
        """One tick of a running stand-up; False when none runs (the policy loop ticks instead)."""
        if self._standup is None:
            return False
        state = self.loop.state()
        if state is None or now - state.stamp > self.loop.safety.config.watchdog_timeout_s:
            self._standup = None
            self._publish_status("stand_up_aborted: stale or missing state", warn=True)
            return False
        decision = self._standup.step(now, state.joint_pos, state.projected_gravity)
        targets = decision.targets if decision.targets is not None else state.joint_pos  # refused: damping
        self._message.data = np.asarray(targets, dtype=np.float64).tolist()
        self._targets_pub.publish(self._message)
        self._report_stand_up(decision)
        return True

    def _report_stand_up(self, decision) -> None:
        if decision.refused:
            self._standup, self._standup_failed = None, True
            self._publish_status(f"stand_up_refused: {decision.refused}", warn=True)
        elif decision.done:
            self._standup = None
            self.loop.safety.reset()  # soft start from the default pose, then the policy
            self._publish_status("stand_up_done: soft start follows", warn=False)
        elif decision.phase.value != getattr(self, "_standup_phase", None):
            self._standup_phase = decision.phase.value
            self._publish_status(f"standing_up: {decision.phase.value}", warn=False)

    def _publish_status(self, text: str, warn: bool) -> None:
        if warn:  # two call sites: rclpy raises when one call site logs at two severities
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)
        self._status_pub.publish(String(data=text))
        self._last_status = None  # the next safety decision is reported again

    def finish(self, why: str) -> None:
        """End a run normally (its caller's budget is spent; nothing went wrong): the safety layer's e-stop latch
        holds the pose with damping from the next tick on (a fine-tuning episode then ends as ``interrupted``), as
        for an e-stop, but it is logged and published on ``~/status`` as ``finished: ...``, at INFO, not as an e-stop.
        An e-stop latched before it stays reported as one (WARN); ``~/estop`` afterwards logs its WARN as ever."""
        self._finished = f"finished: {why}; holding the pose (damping)"
        self.loop.safety.estop(self._finished)

    # ---- what a subclass changes ------------------------------------------------------------------
    def _make_loop(self, p: dict, runner, safety: SafetyController) -> PolicyLoop:
        """The control loop the node feeds and ticks (fine-tuning: one that explores and records)."""
        return PolicyLoop(runner, safety, p["initial_command"])

    def _subscribe_odom(self) -> None:
        """``odom`` (body-frame twist) into the loop, once."""
        if not self._odom_subscribed:
            self._odom_subscribed = True
            self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR, callback_group=self._sensors)

    def _on_fallen(self) -> None:
        """A tick saw the fall latched: stand up when asked to (``auto_stand_up``) and the last try was not refused."""
        if self._auto_stand_up and not self._standup_failed:
            self._start_stand_up(time.monotonic())

    # ---- the control tick ---------------------------------------------------------------------
    def _on_timer(self) -> None:
        if self._tick_started is not None:  # the previous tick is still waiting: it runs now, late
            self._tick()
        self._tick_started = time.monotonic_ns()
        if self._deadline is not None and not time.monotonic() - self.loop.joints_arrival < _FRESH_S:
            self._deadline.reset()  # wait for the next joint state, at most state_wait_s
            return
        self._tick()

    def _make_tick_thread_realtime(self) -> None:
        """The first tick in a thread raises it to ``realtime_priority`` (or warns once why it cannot)."""
        thread = threading.get_ident()
        if thread not in self._realtime_threads:
            self._realtime_threads.add(thread)
            why = make_thread_realtime(self._realtime_priority)
            if why:
                self.get_logger().warning(f"control thread keeps ordinary scheduling: {why}")

    def _tick(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        started, self._tick_started = self._tick_started, None
        if started is None:
            return
        self._make_tick_thread_realtime()
        cpu = time.thread_time_ns()
        if self._stand_up_tick(time.monotonic()):
            return
        decision = self.loop.tick(time.monotonic())
        if decision.command is not None:
            self._message.data = decision.command.tolist()
            self._targets_pub.publish(self._message)
            arrival = int(self.loop.joints_stamp * 1e9) if math.isfinite(self.loop.joints_stamp) else -1
            self.timing.append((started, arrival, time.monotonic_ns(), time.thread_time_ns() - cpu))
        if decision.status is SafetyStatus.FALLEN:
            self._on_fallen()
        if decision.status is not self._last_status:
            self._last_status = decision.status
            text = f"{decision.status.value}: {decision.reason}"
            if decision.status is SafetyStatus.ESTOP and decision.reason == self._finished:
                text = decision.reason  # a normal end (finish()), not an e-stop
                self.get_logger().info(text)  # rclpy wants one severity per call site: a site of its own
            elif decision.status in (SafetyStatus.RUNNING, SafetyStatus.SOFT_START):
                self.get_logger().info(text)
            else:  # rclpy wants one severity per call site
                self.get_logger().warning(text)
            self._status_pub.publish(String(data=text))


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, "policy_node", (ContractError, PolicyFileError, ValueError), args)


if __name__ == "__main__":
    raise SystemExit(main())
