"""The policy node over real rclpy topics: watchdog, non-finite state, e-stop latching, soft start, refusal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from a1_contract import get_contract
from deploy.runner import ContractMismatchError
from robot_bridge import qos
from robot_bridge.policy_node import PolicyNode
from robot_bridge.realtime import make_thread_realtime, thread_policy
from tests.robot_bridge.conftest import wait_for

CONTRACT = get_contract()
DEFAULT = np.asarray(CONTRACT.default_joint_pos)
TICK = CONTRACT.policy_dt


class FakeRobot(Node):
    """Publishes a settable robot state at ``rate_hz`` (joints in reversed order: matched by name) and records
    the policy node's commands and status."""

    def __init__(self, context, rate_hz: float = 200.0) -> None:
        super().__init__("fake_robot", context=context)
        self.joint_pos = DEFAULT.copy()
        self.publishing = True
        self.commands: list[tuple[float, np.ndarray]] = []
        self.statuses: list[tuple[float, str]] = []
        self._joints = self.create_publisher(JointState, "joint_states", qos.SENSOR)
        self._imu = self.create_publisher(Imu, "imu", qos.SENSOR)
        self._odom = self.create_publisher(Odometry, "odom", qos.SENSOR)
        self.cmd_vel = self.create_publisher(Twist, "cmd_vel", qos.SENSOR)
        # Deeper than the node's depth 1, so that a busy test process still sees every command.
        every_command = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Float64MultiArray, "joint_targets", self._on_command, every_command)
        self.create_subscription(String, "policy_node/status", self._on_status, qos.STATUS)
        self.estop = self.create_client(Trigger, "policy_node/estop")
        self.reset = self.create_client(Trigger, "policy_node/reset")
        self.create_timer(1.0 / rate_hz, self._publish)

    def _publish(self) -> None:
        if not self.publishing:
            return
        names = list(CONTRACT.joint_names)[::-1]
        msg = JointState(name=names, position=self.joint_pos[::-1].tolist(), velocity=[0.0] * 12)
        self._joints.publish(msg)
        imu = Imu()
        imu.orientation.w = 1.0
        self._imu.publish(imu)
        self._odom.publish(Odometry())

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands.append((time.monotonic(), np.asarray(msg.data)))

    def _on_status(self, msg: String) -> None:
        self.statuses.append((time.monotonic(), msg.data))

    def status(self) -> str:
        return self.statuses[-1][1] if self.statuses else ""

    def wait_status(self, prefix: str, timeout: float = 10.0) -> float:
        wait_for(lambda: self.status().startswith(prefix), timeout, f"status {prefix!r} (have {self.statuses})")
        return self.statuses[-1][0]

    def call(self, client) -> Trigger.Response:
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 10.0, "the service response")
        return future.result()


def start(ros_graph, policy: Path, **params) -> tuple[PolicyNode, FakeRobot]:
    robot = ros_graph.add(FakeRobot(ros_graph.context))
    overrides = {"policy_path": str(policy), "soft_start_hold_s": 0.0, "soft_start_speed": 50.0, **params}
    node = PolicyNode(
        context=ros_graph.context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]
    )
    ros_graph.add(node)
    return node, robot


def test_stale_state_gives_the_damping_command_within_the_timeout(ros_graph, untrained_policy):
    timeout = 0.1
    node, robot = start(ros_graph, untrained_policy, watchdog_timeout_s=timeout)
    robot.joint_pos = DEFAULT + 0.05
    robot.wait_status("running")
    robot.publishing = False
    stopped = time.monotonic()
    stale_at = robot.wait_status("stale_state", timeout=5.0)
    # The last sample arrived at most one publish period before ``stopped``; a tick comes every 20 ms.
    assert stale_at - stopped <= timeout + TICK + 0.05, f"{stale_at - stopped:.3f} s"
    wait_for(lambda: robot.commands[-1][0] > stale_at, 2.0, "a command after the status")
    after = [c for t, c in robot.commands if t > stale_at]
    np.testing.assert_allclose(after[-1], DEFAULT + 0.05, atol=1e-12)  # the last measured pose
    robot.publishing = True
    robot.wait_status("running")  # fresh state: soft start, then the policy again


def test_nonfinite_state_is_a_latched_safe_stop_until_reset(ros_graph, untrained_policy):
    node, robot = start(ros_graph, untrained_policy)
    robot.wait_status("running")
    measured = DEFAULT + 0.02
    robot.joint_pos = measured
    time.sleep(0.05)
    bad = measured.copy()
    bad[4] = np.nan
    robot.joint_pos = bad
    stopped_at = robot.wait_status("nonfinite_state", timeout=5.0)
    assert "joint_pos" in robot.status()
    robot.joint_pos = measured
    time.sleep(0.2)
    assert robot.status().startswith("nonfinite_state"), "latched until reset"
    after = [c for t, c in robot.commands if t > stopped_at + 0.05]
    assert after and all(np.isfinite(c).all() for c in after)
    np.testing.assert_allclose(after[-1], measured, atol=1e-12)
    assert robot.call(robot.reset).success
    robot.wait_status("running")


def test_estop_latches_until_reset(ros_graph, untrained_policy):
    node, robot = start(ros_graph, untrained_policy)
    robot.wait_status("running")
    assert robot.call(robot.estop).success
    estop_at = robot.wait_status("estop", timeout=2.0)
    time.sleep(0.3)
    assert robot.status().startswith("estop")
    after = [c for t, c in robot.commands if t > estop_at]
    assert len(after) >= 5
    for command in after:
        np.testing.assert_allclose(command, DEFAULT, atol=1e-12)  # damping: the measured pose
    assert node.loop.safety.counters["entered:estop"] == 1
    assert robot.call(robot.reset).success
    robot.wait_status("running")


def test_back_to_back_statuses_all_reach_a_monitor_at_either_severity(ros_graph, untrained_policy):
    # A stand-up reports its phases at info and a refusal at warning through one helper: one call site at two
    # severities made rclpy raise in the executor thread, which stopped every node of the graph. And a monitor
    # must get each transition, even those published within one executor cycle (stand_up_done, then soft_start).
    node, robot = start(ros_graph, untrained_policy)
    robot.wait_status("running")
    sent = ["standing_up: fold", "stand_up_refused: a test", "standing_up: fold", "stand_up_done: a test"]
    for text in sent:
        node._publish_status(text, warn=text.startswith("stand_up_refused"))

    def received() -> list[str]:
        return [text for _, text in robot.statuses if text in sent]

    wait_for(lambda: received() == sent, 2.0, lambda: f"every status in order (got {received()})")
    assert ros_graph.alive, "the executor thread stopped"


def test_soft_start_reaches_the_default_pose_within_the_per_tick_bound(ros_graph, untrained_policy):
    bound = 0.04
    node, robot = start(ros_graph, untrained_policy, max_delta_per_tick=bound, soft_start_speed=5.0)
    crouched = DEFAULT + np.repeat([0.1, 0.5, 0.4], 4) * np.array([1, -1, 1, -1] * 3)
    robot.joint_pos = crouched  # the fake robot stays where it is: the worst case for the bound
    robot.wait_status("running", timeout=20.0)
    soft = [c for _, c in robot.commands]
    soft = soft[: next(i for i, c in enumerate(soft) if np.array_equal(c, DEFAULT)) + 1]
    steps = np.abs(np.diff(np.vstack([crouched, *soft]), axis=0)).max(axis=1)
    assert steps.max() <= bound + 1e-12, steps.max()
    assert len(soft) >= 0.5 / bound  # 0.5 rad at most `bound` per tick
    np.testing.assert_array_equal(soft[-1], DEFAULT)


def test_a_policy_for_another_contract_is_refused_naming_the_field(ros_graph, mismatched_policy):
    with pytest.raises(ContractMismatchError, match="joint_names"):
        PolicyNode(
            context=ros_graph.context, parameter_overrides=[Parameter("policy_path", value=str(mismatched_policy))]
        )


def test_the_installed_executable_refuses_a_mismatched_policy(mismatched_policy):
    executable = Path(sys.prefix) / "lib" / "robot_bridge" / "policy_node"
    result = subprocess.run(
        [str(executable), "--ros-args", "-p", f"policy_path:={mismatched_policy}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "refusing to start" in output and "joint_names" in output, output


def test_the_control_tick_runs_in_a_sched_fifo_thread_or_says_why_not(ros_graph, untrained_policy):
    """``realtime_priority`` (default 50): the thread that ticks is raised to SCHED_FIFO (root here), so that the
    process a command wakes cannot preempt the tick; 0 leaves it alone; out of range is refused at start."""
    node, robot = start(ros_graph, untrained_policy, realtime_priority=7)
    robot.wait_status("running")
    assert thread_policy(ros_graph.thread.native_id) == "fifo"
    assert os.sched_getparam(ros_graph.thread.native_id).sched_priority == 7
    assert thread_policy(threading.get_native_id()) == "other", "only the thread that ticks"
    for bad in (100, -1):
        with pytest.raises(ValueError, match="realtime_priority must be 0"):
            start(ros_graph, untrained_policy, realtime_priority=bad)


def test_realtime_priority_zero_leaves_the_thread_alone_and_a_refusal_is_one_line():
    assert make_thread_realtime(0) == ""
    assert thread_policy(threading.get_native_id()) == "other"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops root (if it has it), then asks for SCHED_FIFO as an ordinary user would
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            why = make_thread_realtime(50)
            os.write(write, f"{thread_policy(threading.get_native_id())}|{why}".encode())
        finally:
            os._exit(0)
    os.close(write)
    policy, why = os.read(read, 4096).decode().split("|", 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert policy == "other", why
    assert "not permitted" in why and "realtime_priority 0" in why and "\n" not in why
