"""The fine-tuning actor node (``ros2 run robot_bridge finetune_actor``): the policy node, exploring and recording.

It is :class:`robot_bridge.policy_node.PolicyNode` (same topics, services, safety layer, stand-up and node name
``policy_node``) with :class:`~finetune.actor.FinetuneLoop` as its control loop, and:

Subscribes also (sensor QoS): ``odom`` (the reward tracks velocity) and ``foot_contacts``
(std_msgs/Float64MultiArray); with ``score_ground_truth`` the emulator's ``ground_truth/joint_states``,
``ground_truth/imu`` and ``ground_truth/odom`` (the referee's reward only).
Publishes also: ``~/finetune`` (std_msgs/String, JSON of the actor's and the transport's counters, 1 Hz).
After a fall, with ``auto_reset_service`` and no stand-up: calls that std_srvs/Trigger (the emulator's reset),
then soft-starts a new episode. ``~/reset`` ends the running episode as ``operator`` first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from a1_contract import ContractError
from deploy.runner import PolicyFileError
from finetune.actor import FinetuneLoop, check_choices
from robot_bridge import qos
from robot_bridge.observation import MissingJointsError
from robot_bridge.params import Param
from robot_bridge.policy_node import PARAMS as POLICY_PARAMS
from robot_bridge.policy_node import PolicyNode
from robot_bridge.safety import SafetyController
from robot_bridge.spin import run_node

FINETUNE_PARAMS: tuple[Param, ...] = (
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
PARAMS: tuple[Param, ...] = POLICY_PARAMS + FINETUNE_PARAMS


class FinetuneActorNode(PolicyNode):
    """See the module docs. ``kwargs`` go to :class:`rclpy.node.Node` (``parameter_overrides``, ``context``...)."""

    PARAMS = PARAMS

    def __init__(self, **kwargs) -> None:
        self.client = None
        self._reset_client = None
        self._reset_pending = False
        super().__init__(**kwargs)
        p, sensors = self.params, self._sensors
        self._subscribe_odom()
        self.create_subscription(Float64MultiArray, "foot_contacts", self._on_feet, qos.SENSOR, callback_group=sensors)
        self._finetune_pub = self.create_publisher(String, "~/finetune", qos.STATUS)
        self.create_timer(1.0, self._publish_finetune, callback_group=sensors)
        if p["auto_reset_service"]:
            self._reset_client = self.create_client(Trigger, p["auto_reset_service"], callback_group=sensors)
        if p["score_ground_truth"]:
            for kind, topic, callback in ((JointState, "ground_truth/joint_states", self._on_truth_joints),
                                          (Imu, "ground_truth/imu", self._on_truth_imu),
                                          (Odometry, "ground_truth/odom", self._on_truth_odom)):  # fmt: skip
                self.create_subscription(kind, topic, callback, qos.SENSOR, callback_group=sensors)

    # ---- the loop -----------------------------------------------------------------------------
    def _make_loop(self, p: dict, runner, safety: SafetyController) -> FinetuneLoop:
        check_choices(p, "parameter ")  # before the client starts a thread
        if p["learner_endpoint"]:
            from finetune.transport import ActorClient  # pyzmq only with a learner

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

    # ---- inputs beyond the policy's -------------------------------------------------------------
    def _on_feet(self, msg: Float64MultiArray) -> None:
        self.loop.on_feet(time.monotonic(), msg.data)

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

    # ---- episodes -----------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.loop.end_episode("operator")
        return super()._on_reset(request, response)

    def _on_fallen(self) -> None:
        if self._auto_stand_up and not self._standup_failed:
            super()._on_fallen()
        else:
            self._auto_reset()

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

    # ---- status -------------------------------------------------------------------------------
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

    def destroy_node(self) -> None:
        loop = getattr(self, "loop", None)
        if isinstance(loop, FinetuneLoop):
            loop.close()
        if self.client is not None:
            self.client.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(FinetuneActorNode, "finetune_actor", (ContractError, PolicyFileError, ValueError), args)


if __name__ == "__main__":
    raise SystemExit(main())
