"""``policy_node``: runs an exported policy on the A1 behind the safety layer (``ros2 run robot_bridge policy_node``).

Subscribes (sensor QoS: best effort, depth 1):
  ``joint_states`` (sensor_msgs/JointState, matched by joint name), ``imu`` (sensor_msgs/Imu: orientation and
  angular velocity of the trunk), ``odom`` (nav_msgs/Odometry: body-frame twist; only for contracts that
  observe ``base_lin_vel``), ``cmd_vel`` (geometry_msgs/Twist: linear.x, linear.y, angular.z); fine-tuning also
  ``odom`` and ``foot_contacts`` (std_msgs/Float64MultiArray), and with ``score_ground_truth`` the emulator's
  ``ground_truth/joint_states``, ``ground_truth/imu`` and ``ground_truth/odom`` (the referee's reward only).
Publishes:
  ``joint_targets`` (std_msgs/Float64MultiArray: position targets in the contract's joint order, ros2_control
  forward-command convention), ``~/status`` (std_msgs/String ``"<status>: <reason>"`` on every change, latched;
  ``"finished: <reason>"`` after :meth:`PolicyNode.finish`, the normal end of a run, at INFO).
Services: ``~/estop`` and ``~/reset`` (std_srvs/Trigger).

The control timer runs at the contract's policy rate in the control callback group. A tick uses the newest
joint state if it is under 1 ms old; otherwise it is completed by the next joint state to arrive, or after
``state_wait_s`` without one, so the command leaves right after fresh state arrives and nothing blocks a thread.
The joint-state subscription and the wait's deadline timer share the control group (one tick at a time); the
other sensors have their own group. All logic lives in :class:`~robot_bridge.control.PolicyLoop` and
:class:`~robot_bridge.safety.SafetyController`.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from pathlib import Path

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
from robot_bridge.params import Param, Timing, at_speed, declare
from robot_bridge.safety import SafetyConfig, SafetyController, SafetyStatus
from robot_bridge.spin import run_node

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
    Param(
        "auto_stand_up",
        False,
        "After a fall, stand up from the belly (robot_bridge.standup) and soft-start "
        "again; on its back or side: refused, the operator turns it over and calls ~/stand_up.",
    ),
    # ---- fine-tuning (finetune.actor): off unless `finetune` is true ----
    Param("finetune", False, "Fine-tuning actor: explore, record transitions, send them to the learner."),
    Param("learner_endpoint", "", "Learner's zmq endpoint (tcp://host:5555); empty: record returns locally only."),
    Param("actor_id", "a1", "This robot's name; its key pair is <keys_dir>/<actor_id>.key(_secret)."),
    Param("keys_dir", "keys", "CurveZMQ keys: <actor_id>.key_secret and the learner's public learner.key."),
    Param("spool_dir", "finetune_spool", "Durable outbox of transitions (kept until the learner checkpointed them)."),
    Param("policy_dir", "finetune_policies", "Where policies received from the learner are written before use."),
    Param("explore", True, "Sample actions from the policy's Gaussian (false: deterministic, still recorded)."),
    Param("command_mode", "fixed", "fixed: initial_command / cmd_vel; sample: the contract's ranges per episode."),
    Param("episode_steps", 0, "Transitions per episode before a truncation; 0 = the contract's episode length."),
    Param("on_learner_lost", "keep", "Learner unreachable: keep (last policy, spool) or stand (default pose)."),
    Param(
        "auto_reset_service",
        "",
        "After a fall, call this std_srvs/Trigger (e.g. /emulator_node/reset), then "
        "clear the fall and soft-start a new episode; empty: wait for ~/reset.",
    ),
    Param("seed", 0, "Seed of the exploration noise and sampled commands."),
    Param(
        "score_ground_truth",
        False,
        "Emulator only: also score episodes with the reward computed from the emulator's ground_truth/* topics "
        "(a referee's motion capture); the learner still gets the measured reward.",
    ),
)

TIMING = Timing(
    rates=("rate_hz", "soft_start_speed"), durations=("watchdog_timeout_s", "state_wait_s", "soft_start_hold_s")
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

    def __init__(self, **kwargs) -> None:
        super().__init__("policy_node", **kwargs)
        self._finetune, self.client = False, None
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
        safety = SafetyController(contract, config, dt=1.0 / rate_hz)
        self._finetune = bool(p["finetune"])
        if self._finetune:
            self.loop = self._finetune_loop(p, runner, safety)
        else:
            self.loop = PolicyLoop(runner, safety, p["initial_command"])
        self._last_status = None
        self._finished: str | None = None
        """The reason :meth:`finish` latched (None before): an e-stop with exactly this reason is a normal end."""
        self._tick_started: int | None = None
        """Monotonic ns of the timer tick that waits for a fresh joint state, or None."""
        self.timing: deque[tuple[int, int, int, int]] = deque(maxlen=100_000)
        """Per published command: timer tick, arrival of the joint state used, publish (monotonic ns), and the
        tick's CPU time (thread ns: observation, policy, safety, publish)."""

        control, sensors = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointState, "joint_states", self._on_joints, qos.SENSOR, callback_group=control)
        self.create_subscription(Imu, "imu", self._on_imu, qos.SENSOR, callback_group=sensors)
        self.create_subscription(Twist, "cmd_vel", self._on_twist, qos.SENSOR, callback_group=sensors)
        if self.loop.assembler.needs_base_lin_vel or p["finetune"]:  # fine-tuning: the reward tracks velocity
            self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR, callback_group=sensors)
        if p["finetune"]:
            self.create_subscription(
                Float64MultiArray, "foot_contacts", self._on_feet, qos.SENSOR, callback_group=sensors
            )
            self._finetune_pub = self.create_publisher(String, "~/finetune", qos.STATUS)
            self.create_timer(1.0, self._publish_finetune, callback_group=sensors)
            self._reset_client = None
            self._reset_pending = False
            if p["auto_reset_service"]:
                self._reset_client = self.create_client(Trigger, p["auto_reset_service"], callback_group=sensors)
            if p["score_ground_truth"]:
                for kind, topic, callback in ((JointState, "ground_truth/joint_states", self._on_truth_joints),
                                              (Imu, "ground_truth/imu", self._on_truth_imu),
                                              (Odometry, "ground_truth/odom", self._on_truth_odom)):  # fmt: skip
                    self.create_subscription(kind, topic, callback, qos.SENSOR, callback_group=sensors)
        self._targets_pub = self.create_publisher(Float64MultiArray, "joint_targets", qos.COMMAND)
        self._status_pub = self.create_publisher(String, "~/status", qos.STATUS)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/stand_up", self._on_stand_up)
        self._auto_stand_up = bool(p["auto_stand_up"])
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
            if self._finetune:
                self.loop.on_joints(time.monotonic(), msg.name, msg.position, msg.velocity, msg.effort)
            else:
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

    def _on_feet(self, msg: Float64MultiArray) -> None:
        self.loop.on_feet(time.monotonic(), msg.data)

    def _on_twist(self, msg: Twist) -> None:
        self.loop.on_command(msg.linear.x, msg.linear.y, msg.angular.z)

    def _on_truth_joints(self, msg: JointState) -> None:
        try:
            self.loop.on_truth_joints(time.monotonic(), msg.name, msg.position, msg.velocity, msg.effort)
        except MissingJointsError as exc:
            self.get_logger().error(f"ground truth: {exc}", throttle_duration_sec=1.0)

    def _on_truth_imu(self, msg: Imu) -> None:
        o, w = msg.orientation, msg.angular_velocity
        self.loop.on_truth_imu(time.monotonic(), (o.x, o.y, o.z, o.w), (w.x, w.y, w.z))

    def _on_truth_odom(self, msg: Odometry) -> None:
        v = msg.twist.twist.linear
        self.loop.on_truth_body_velocity(time.monotonic(), (v.x, v.y, v.z))

    # ---- services -----------------------------------------------------------------------------
    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.loop.safety.estop("e-stop service called")
        self.get_logger().warning("E-STOP latched (damping); call ~/reset to clear")
        response.success, response.message = True, "e-stop latched"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._finetune:
            self.loop.end_episode("operator")
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
        from robot_bridge.standup import StandUpController

        state = self.loop.state()
        if state is None:
            return False
        self._standup = StandUpController(self.loop.contract, dt=self.loop.safety.dt)
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

    # ---- fine-tuning ----------------------------------------------------------------------------
    def _finetune_loop(self, p: dict, runner, safety: SafetyController):
        from finetune.actor import FinetuneLoop  # numpy + onnxruntime (+ pyzmq with a learner); no torch

        for name, allowed in (("command_mode", ("fixed", "sample")), ("on_learner_lost", ("keep", "stand"))):
            if p[name] not in allowed:  # before the client starts a thread
                raise ValueError(f"parameter {name} must be one of {allowed}, got {p[name]!r}")

        if p["learner_endpoint"]:
            from finetune.transport import ActorClient

            keys = Path(p["keys_dir"])
            self.client = ActorClient(
                p["learner_endpoint"],
                keys / f"{p['actor_id']}.key_secret",
                keys / "learner.key",
                p["actor_id"],
                Path(p["spool_dir"]),
                contract_hash=runner.contract.hash,
            ).start()
        log = self.get_logger().warning
        return FinetuneLoop(
            runner,
            safety,
            p["initial_command"],
            client=self.client,
            policy_dir=p["policy_dir"],
            explore=p["explore"],
            command_mode=p["command_mode"],
            episode_steps=p["episode_steps"] or None,
            on_learner_lost=p["on_learner_lost"],
            seed=p["seed"],
            score_ground_truth=p["score_ground_truth"],
            log=lambda text: log(text),
        )

    def finetune_status(self) -> dict:
        """The actor's counters and the transport's (JSON-able)."""
        stats = self.loop.stats
        episodes = stats.episode_log
        return {
            "transitions": stats.transitions,
            "dropped": stats.dropped,
            "actions_bounded": stats.actions_bounded,
            "episodes": stats.episodes,
            "falls": stats.falls,
            "policy_version": stats.policy_version,
            "policy_swaps": stats.policy_swaps,
            "learner_connected": None if self.client is None else bool(self.client.connected),
            "learner_lost_ticks": stats.learner_lost_ticks,
            "last_return": episodes[-1].ret if episodes else None,
            "unmeasured_reward_terms": self.loop.reward.unmeasured,
            "transport": {} if self.client is None else dict(self.client.stats),
        }

    def _publish_finetune(self) -> None:
        self._finetune_pub.publish(String(data=json.dumps(self.finetune_status())))

    def _auto_reset(self) -> None:
        """After a fall: the reset service puts the robot back (emulator: standing again), then a soft start."""
        if self._reset_client is None or self._reset_pending:
            return
        if not self._reset_client.service_is_ready():
            self.get_logger().warning("fallen; waiting for the reset service", throttle_duration_sec=2.0)
            return
        self._reset_pending = True
        future = self._reset_client.call_async(Trigger.Request())

        def done(f) -> None:
            self._reset_pending = False
            result = f.result()
            if result is not None and result.success:
                self.loop.safety.reset()
            else:
                self.get_logger().error(f"reset service failed: {None if result is None else result.message}")

        future.add_done_callback(done)

    def destroy_node(self) -> None:
        if self._finetune:
            self.loop.close()
        if self.client is not None:
            self.client.close()
        super().destroy_node()

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
        if self._stand_up_tick(time.monotonic()):
            return
        decision = self.loop.tick(time.monotonic())
        if decision.command is not None:
            self._message.data = decision.command.tolist()
            self._targets_pub.publish(self._message)
            arrival = int(self.loop.joints_stamp * 1e9) if math.isfinite(self.loop.joints_stamp) else -1
            self.timing.append((started, arrival, time.monotonic_ns(), time.thread_time_ns() - cpu))
        if decision.status is SafetyStatus.FALLEN:
            if self._auto_stand_up and not self._standup_failed:
                self._start_stand_up(time.monotonic())
            elif self._finetune:
                self._auto_reset()
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
