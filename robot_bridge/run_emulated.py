"""The emulated robot + policy graph in one process: what ``launch/emulated.launch.py`` starts, runnable where
``ros2 launch`` is not installed (CI, a venv with the ROS 2 wheels)::

    python -m robot_bridge.run_emulated --policy policy.onnx --command 0.5 0 0 --seconds 10 [--speed 1]
        [--mass-scale 1.1 --friction 0.6 --motor-strength 0.9 --action-latency-s 0.01 --sensor-noise 1]

The emulator node, the policy node and a monitor node (which records the ground-truth odometry and the policy
node's status from their topics) spin in one executor thread; the emulator's physics has its own thread. The nodes
start as the launch file starts them: from their parameter files (``emulator_node.yaml``, ``policy_node.yaml`` in
the installed ``share/robot_bridge/config``, :func:`robot_bridge.params.load_config`), then the command line's
choices. After the soft start, when the policy first runs, the command is measured for ``--seconds`` of simulated
time. The last line printed is JSON: mean forward velocity (ground-truth body-frame ``vx``, averaged over the window),
falls, statuses, safety counters.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import Trigger

from a1_common.cli import ArgumentParser, run_main
from robot_bridge import qos
from robot_bridge.emulator_node import EmulatorNode
from robot_bridge.params import load_config
from robot_bridge.policy_node import PolicyNode, params_at_speed

FALL_HEIGHT = 0.15
"""Trunk height (m) under which the run counts as a fall even without trunk contact."""


@dataclass
class GraphResult:
    command: list[float]
    seconds: float
    """Simulated seconds measured after the policy took over."""
    mean_forward_velocity: float
    """Mean ground-truth body-frame vx over the window (m/s)."""
    mean_lateral_velocity: float
    forward_displacement: float
    """World x travelled over the window (m)."""
    min_height: float
    fell: bool
    statuses: list[str]
    safety_counters: dict[str, int]
    emulator_steps_behind: int
    soft_start_wall_s: float
    odometry_samples: int


class Monitor(Node):
    """Records odometry and policy status from the topics, as any other subscriber would."""

    def __init__(self, **kwargs) -> None:
        super().__init__("emulated_monitor", **kwargs)
        self.odometry: list[tuple[float, float, float, float]] = []
        """(x, z, body vx, body vy) per message."""
        self.statuses: list[str] = []
        self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR)
        self.create_subscription(String, "policy_node/status", lambda m: self.statuses.append(m.data), qos.STATUS)

    def _on_odom(self, msg: Odometry) -> None:
        p, v = msg.pose.pose.position, msg.twist.twist.linear
        self.odometry.append((p.x, p.z, v.x, v.y))


def _overrides(values: dict) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


class EmulatedGraph:
    """Emulator node + policy node + monitor on a private context, spun by one executor thread.

    ``with EmulatedGraph(policy, ...) as graph: graph.wait_running(); ...``. Used by :func:`run_emulated` and by
    fine-tuning (:mod:`finetune.emulated`), which passes its actor node (``policy_node``, a :class:`PolicyNode`
    subclass), that node's parameter files (``policy_config``) and its parameters.

    Each node's parameters: its parameter files (``config_dir``, default the installed ones), then ``speed`` and
    ``gap`` (the emulator) or ``policy_path``, ``command`` and ``policy_params`` (the policy node).
    """

    def __init__(
        self,
        policy_path: str | Path,
        *,
        command: tuple[float, float, float] = (0.5, 0.0, 0.0),
        speed: float = 1.0,
        gap: dict | None = None,
        policy_params: dict | None = None,
        policy_node: type[PolicyNode] = PolicyNode,
        policy_config: tuple[str, ...] = ("policy_node.yaml",),
        config_dir: str | Path | None = None,
    ) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=[])
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []
        self._calls = 0
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        try:
            emulator_params = {**load_config("emulator_node", "emulator_node.yaml", directory=config_dir),
                               "speed": speed, **(gap or {})}  # fmt: skip
            self.emulator = EmulatorNode(context=self.context, parameter_overrides=_overrides(emulator_params))
            self.nodes.append(self.emulator)
            params = {**load_config("policy_node", *policy_config, directory=config_dir),
                      "policy_path": str(policy_path), "initial_command": [float(c) for c in command],
                      **(policy_params or {})}  # fmt: skip
            # every wall-clock rate and timeout of the policy node scaled with the emulator
            params = params_at_speed(speed, params, self.emulator.robot.contract.policy_rate_hz)
            self.policy = policy_node(context=self.context, parameter_overrides=_overrides(params))
            self.monitor = Monitor(context=self.context)
            self.nodes += [self.policy, self.monitor]
            for node in self.nodes:
                self.executor.add_node(node)
            self.started = time.monotonic()
            self._spinner.start()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> EmulatedGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def emulated_seconds(self) -> float:
        """Simulated seconds since the start, across episode resets (the robot's own clock restarts at each)."""
        return self.emulator._steps * self.emulator.robot.contract.sim_dt

    def check_alive(self) -> None:
        if not self._spinner.is_alive():
            raise RuntimeError("the executor stopped (a callback raised; see the log above)")

    def wait_running(self, timeout_s: float = 30.0) -> float:
        """Wait for the policy's first ``running`` status; returns the wall-clock seconds it took."""
        while not any(s.startswith("running") for s in self.monitor.statuses):
            self.check_alive()
            if time.monotonic() - self.started > timeout_s:
                raise TimeoutError(f"the policy did not take over within {timeout_s} s: {self.monitor.statuses}")
            time.sleep(0.01)
        return time.monotonic() - self.started

    def call(self, service: str, srv_type: type = Trigger, request=None, timeout_s: float = 5.0):
        """Call ``service`` from the calling thread and return its response (``TimeoutError`` without one).

        The client's node is on the graph's context but is spun here, by an executor of its own, never by the
        graph's: a node destroyed while another thread's executor builds its wait set from it kills that
        executor (rclpy raises ``InvalidHandle`` in the executor thread, and every node of the graph stops).
        """
        self.check_alive()
        self._calls += 1
        node = Node(f"emulated_graph_client_{self._calls}", context=self.context)
        executor = SingleThreadedExecutor(context=self.context)
        try:
            executor.add_node(node)
            client = node.create_client(srv_type, service)
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f"{service} is not offered")
            future = client.call_async(request if request is not None else srv_type.Request())
            executor.spin_until_future_complete(future, timeout_sec=timeout_s)
            if not future.done():
                raise TimeoutError(f"{service} did not answer within {timeout_s} s")
            return future.result()
        finally:
            executor.shutdown()
            node.destroy_node()

    def close(self) -> None:
        self.executor.shutdown()
        if self._spinner.is_alive():
            self._spinner.join(timeout=5.0)  # before destroying nodes: no callback may run on a destroyed one
        for node in self.nodes:
            node.destroy_node()
        self.nodes = []
        rclpy.try_shutdown(context=self.context)


def run_emulated(
    policy_path: str | Path,
    *,
    command: tuple[float, float, float] = (0.5, 0.0, 0.0),
    seconds: float = 10.0,
    speed: float = 1.0,
    gap: dict | None = None,
    policy_params: dict | None = None,
    start_timeout_s: float = 30.0,
    config_dir: str | Path | None = None,
) -> GraphResult:
    """Run the graph until ``seconds`` of simulated time have passed with the policy in control."""
    with EmulatedGraph(
        policy_path, command=command, speed=speed, gap=gap, policy_params=policy_params, config_dir=config_dir
    ) as graph:
        emulator, policy, monitor = graph.emulator, graph.policy, graph.monitor
        soft_start_wall_s = graph.wait_running(start_timeout_s)
        first, sim_start, x_start = len(monitor.odometry), emulator.robot.time, emulator.robot.data.qpos[0]
        contacts_before = emulator.robot.trunk_contacts
        while emulator.robot.time - sim_start < seconds:
            graph.check_alive()
            time.sleep(0.02)
        sim_seconds, x_end = emulator.robot.time - sim_start, emulator.robot.data.qpos[0]
        window = np.array(monitor.odometry[first:])
        fell = emulator.robot.trunk_contacts > contacts_before or any(s.startswith("fallen") for s in monitor.statuses)
        return GraphResult(
            command=[float(c) for c in command],
            seconds=round(sim_seconds, 4),
            mean_forward_velocity=float(window[:, 2].mean()),
            mean_lateral_velocity=float(window[:, 3].mean()),
            forward_displacement=float(x_end - x_start),
            min_height=float(window[:, 1].min()),
            fell=bool(fell or window[:, 1].min() < FALL_HEIGHT),
            statuses=list(monitor.statuses),
            safety_counters=policy.loop.safety.counters,
            emulator_steps_behind=emulator.steps_behind,
            soft_start_wall_s=round(soft_start_wall_s, 3),
            odometry_samples=len(window),
        )


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="robot-bridge-emulated", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="ONNX file from deploy.export")
    parser.add_argument("--command", type=float, nargs=3, default=(0.5, 0.0, 0.0), metavar=("VX", "VY", "WZ"))
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds with the policy in control")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall-clock second")
    for name in ("mass_scale", "friction", "motor_strength", "action_latency_s", "sensor_noise"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, help="dynamics gap (emulator parameter)")
    parser.add_argument("--config-dir", help="the nodes' parameter files (default: share/robot_bridge/config)")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if not args.speed > 0:
        parser.error(f"--speed must be > 0, got {args.speed}")
    gap = {name: getattr(args, name) for name in ("mass_scale", "friction", "motor_strength", "action_latency_s",
                                                   "sensor_noise") if getattr(args, name) is not None}  # fmt: skip
    result = run_emulated(args.policy, command=tuple(args.command), seconds=args.seconds, speed=args.speed, gap=gap,
                          config_dir=args.config_dir)  # fmt: skip
    print(json.dumps(asdict(result)), flush=True)
    return 1 if result.fell else 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "robot-bridge-emulated")


if __name__ == "__main__":
    raise SystemExit(main())
