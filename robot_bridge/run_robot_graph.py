"""The real-robot graph in one process, with the emulated A1 standing in for the robot over UDP::

    python -m robot_bridge.run_robot_graph --policy policy.onnx --command 0.5 0 0 --seconds 10
        [--odometry estimator|ground_truth] [--timeout-s 0.3] [--speed 0.5] [--mass-scale 1.1 ...]

Nodes: ``emulator_node`` (``interface:=udp``: the robot, on a free loopback port, in a process of its own as the
robot is a machine of its own), ``a1_driver`` (``dry_run:=false``, pointed at it), the ``estimator`` and the policy
node: what ``launch/a1_robot.launch.py emulated:=true`` starts, each node with its parameter file from the installed
``share/robot_bridge/config`` (:func:`robot_bridge.params.load_config`). The per-run choices are this run's: the
command line's, ``dry_run`` false, and the nodes' own defaults for the rest (``power_limit_w`` 1000 W, where the
launch file sets 150 W hung or 400 W with ``finetune:=true``). One executor thread spins the last three; the driver
has a thread of its own. The policy's ``odom`` (its ``base_lin_vel``) is the estimator's, computed from the
driver's ``joint_states``, ``imu`` and ``foot_contacts`` as on the real robot; ``--odometry ground_truth`` (for
diagnosis) drops the estimator and remaps the policy's ``odom`` to the emulator's ``ground_truth/odom``. Everything
the policy sees went through the A1 wire protocol (joint states, IMU, foot forces) and everything it commands came
back the same way.

Like :mod:`robot_bridge.run_emulated`, it measures ``--seconds`` of simulated time after the policy first runs
and prints JSON last: mean forward velocity from ``ground_truth/odom``, falls, policy and driver statuses, the
policy's safety counters, the driver's counters and, with the estimator, its ``odom`` rate and its velocity
error against the ground truth at the same stamps.
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

from a1_common.cli import ArgumentParser, run_main
from robot_bridge import qos
from robot_bridge.a1_driver_node import PARAMS as DRIVER_PARAMS
from robot_bridge.a1_driver_node import TIMING as DRIVER_TIMING
from robot_bridge.a1_driver_node import A1DriverNode
from robot_bridge.emulator_node import EmulatorNode
from robot_bridge.emulator_udp import STATE_RATE_HZ
from robot_bridge.estimator_node import EstimatorNode
from robot_bridge.params import at_speed, load_config
from robot_bridge.policy_node import PolicyNode, params_at_speed
from robot_bridge.run_emulated import FALL_HEIGHT, GraphResult, Monitor

ODOMETRY = ("ground_truth", "estimator")
_TRUTH = ["--ros-args", "-r", "odom:=ground_truth/odom"]


@dataclass
class RobotGraphResult(GraphResult):
    odometry: str
    """Where the policy's ``odom`` came from: ``estimator`` or ``ground_truth``."""
    driver_statuses: list[str]
    driver_counters: dict[str, object]
    estimator_rate_hz: float | None = None
    """``odom`` messages per wall-clock second from the estimator over the window (None: ground truth)."""
    estimator_rmse: list[float] | None = None
    """RMSE (m/s) of the estimated body velocity [vx, vy] against the ground truth at the same header stamps."""


def _stamp(msg: Odometry) -> float:
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


class RobotMonitor(Monitor):
    """The emulated graph's monitor on ``ground_truth/odom``, also recording the driver's status."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cli_args=_TRUTH, **kwargs)
        self.driver_statuses: list[str] = []
        self.truth: list[tuple[float, float, float]] = []
        """(header stamp s, body vx, body vy) of the ground truth."""
        self.create_subscription(String, "a1_driver/status", lambda m: self.driver_statuses.append(m.data), qos.STATUS)

    def _on_odom(self, msg: Odometry) -> None:
        super()._on_odom(msg)
        v = msg.twist.twist.linear
        self.truth.append((_stamp(msg), v.x, v.y))


class EstimateMonitor(Node):
    """Records the estimator's ``odom`` as the policy node receives it: (header stamp s, arrival s, vx, vy)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("estimate_monitor", **kwargs)
        self.estimates: list[tuple[float, float, float, float]] = []
        self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR)

    def _on_odom(self, msg: Odometry) -> None:
        v = msg.twist.twist.linear
        self.estimates.append((_stamp(msg), time.monotonic(), v.x, v.y))


def estimator_tracking(
    estimates: list[tuple[float, float, float, float]], truth: list[tuple[float, float, float]]
) -> tuple[float, list[float]]:
    """(odom messages per wall-clock second, RMSE [vx, vy] m/s against the truth interpolated at each stamp)."""
    if len(estimates) < 2 or len(truth) < 2:
        raise RuntimeError(f"too few samples to compare: {len(estimates)} estimates, {len(truth)} ground truth")
    est, ref = np.array(estimates), np.array(truth)
    inside = (est[:, 0] >= ref[0, 0]) & (est[:, 0] <= ref[-1, 0])
    est = est[inside]
    error = est[:, 2:4] - np.stack([np.interp(est[:, 0], ref[:, 0], ref[:, i]) for i in (1, 2)], axis=1)
    rate = (len(est) - 1) / max(est[-1, 1] - est[0, 1], 1e-9)
    return float(rate), np.sqrt((error**2).mean(axis=0)).round(4).tolist()


def _overrides(values: dict) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


_ROBOT_FIELDS = ("time", "x", "trunk_contacts", "steps_behind", "port")


def _robot_process(params: dict, shared, ready, stop, speed: float = 1.0) -> None:
    """The emulated A1 (``emulator_node``, ``interface:=udp``, ``params`` over that) in a process of its own, as the
    robot is a machine of its own: its physics and 500 Hz UDP state stream do not share an interpreter lock with the
    nodes under test. ``shared`` carries the ground truth the parent measures with (:data:`_ROBOT_FIELDS`)."""
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    executor = SingleThreadedExecutor(context=context)
    state_rate_hz = params.get("udp_state_rate_hz", STATE_RATE_HZ) * speed
    node = EmulatorNode(
        context=context,
        parameter_overrides=_overrides(
            {
                **params,
                "interface": "udp",
                "udp_ip": "127.0.0.1",
                "udp_port": 0,
                "speed": speed,
                "udp_state_rate_hz": state_rate_hz,
            }
        ),
    )
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    robot = node.robot
    try:
        while not stop.is_set():
            with node.udp.lock:
                shared[:] = [
                    robot.time,
                    float(robot.data.qpos[0]),
                    robot.trunk_contacts,
                    node.steps_behind_wall_clock,
                    node.udp.address[1],
                ]
            ready.set()
            stop.wait(0.01)
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)


class _RobotProcess:
    """Starts :func:`_robot_process` (spawned: no fork of a process with DDS threads) and reads its ground truth."""

    def __init__(self, params: dict, timeout_s: float = 60.0, speed: float = 1.0) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._shared = ctx.Array("d", len(_ROBOT_FIELDS))
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self.process = ctx.Process(
            target=_robot_process,
            args=(params, self._shared, self._ready, self._stop, speed),
            name="emulated_a1",
            daemon=True,
        )
        self.process.start()
        if not self._ready.wait(timeout_s):
            self.close()
            raise TimeoutError(f"the emulated A1 process did not start within {timeout_s} s")

    def read(self) -> dict[str, float]:
        with self._shared.get_lock():
            return dict(zip(_ROBOT_FIELDS, self._shared[:], strict=True))

    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self) -> None:
        self._stop.set()
        self.process.join(timeout=10.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def run_robot_graph(
    policy_path: str | Path,
    *,
    command: tuple[float, float, float] = (0.5, 0.0, 0.0),
    seconds: float = 10.0,
    odometry: str = "estimator",
    gap: dict | None = None,
    policy_params: dict | None = None,
    driver_params: dict | None = None,
    start_timeout_s: float = 30.0,
    speed: float = 1.0,
    config_dir: str | Path | None = None,
) -> RobotGraphResult:
    """Run the graph until ``seconds`` of simulated time have passed with the policy in control (real time; or
    ``speed`` x real time, with every rate and timeout of the driver and the policy node scaled to match:
    :func:`robot_bridge.params.at_speed`). Each node starts from its parameter file (in ``config_dir``, default the
    installed ones); ``gap``, ``driver_params`` and ``policy_params`` go over them."""
    if odometry not in ODOMETRY:
        raise ValueError(f"odometry must be one of {ODOMETRY}, got {odometry!r}")

    def config(node: str) -> dict:
        return load_config(node, f"{node}.yaml", directory=config_dir)

    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    executor = SingleThreadedExecutor(context=context)
    nodes: list[Node] = []
    spinner = threading.Thread(target=executor.spin, daemon=True)
    robot = None
    try:
        robot = _RobotProcess({**config("emulator_node"), **(gap or {})}, speed=speed)
        ip, port = "127.0.0.1", int(robot.read()["port"])
        driver_values = {
            **config("a1_driver"),
            "robot_ip": ip,
            "robot_port": port,
            "local_ip": "127.0.0.1",
            "local_port": 0,
            "dry_run": False,
            **(driver_params or {}),
        }
        driver_values = at_speed(DRIVER_PARAMS, DRIVER_TIMING, speed, driver_values)
        driver = A1DriverNode(context=context, parameter_overrides=_overrides(driver_values))
        nodes.append(driver)
        estimate_monitor = None
        if odometry == "estimator":
            estimate_monitor = EstimateMonitor(context=context)
            estimator = EstimatorNode(context=context, parameter_overrides=_overrides(config("estimator")))
            nodes += [estimator, estimate_monitor]
        params = {
            **config("policy_node"),
            "policy_path": str(policy_path),
            "initial_command": [float(c) for c in command],
            **(policy_params or {}),
        }
        params = params_at_speed(speed, params, driver.contract.policy_rate_hz)
        cli_args = _TRUTH if odometry == "ground_truth" else None
        policy = PolicyNode(context=context, parameter_overrides=_overrides(params), cli_args=cli_args)
        monitor = RobotMonitor(context=context)
        nodes += [policy, monitor]
        for node in nodes:
            executor.add_node(node)
        t0 = time.monotonic()
        spinner.start()
        while not any(s.startswith("running") for s in monitor.statuses):
            if not spinner.is_alive():
                raise RuntimeError("the executor stopped (a callback raised; see the log above)")
            if time.monotonic() - t0 > start_timeout_s:
                raise TimeoutError(
                    f"the policy did not take over within {start_timeout_s} s: policy {monitor.statuses}, "
                    f"driver {monitor.driver_statuses}, {driver.driver.snapshot()}"
                )
            time.sleep(0.01)
        soft_start_wall_s = time.monotonic() - t0
        start = robot.read()
        first, sim_start, x_start = len(monitor.odometry), start["time"], start["x"]
        first_truth = len(monitor.truth)
        first_estimate = 0 if estimate_monitor is None else len(estimate_monitor.estimates)
        contacts_before = start["trunk_contacts"]
        while robot.read()["time"] - sim_start < seconds:
            if not spinner.is_alive():
                raise RuntimeError("the executor stopped (a callback raised; see the log above)")
            if not robot.alive():
                raise RuntimeError("the emulated A1 process died (see the log above)")
            time.sleep(0.02)
        end = robot.read()
        sim_seconds, x_end, contacts = end["time"] - sim_start, end["x"], end["trunk_contacts"]
        window = np.array(monitor.odometry[first:])
        tracking = (None, None)
        if estimate_monitor is not None:
            tracking = estimator_tracking(estimate_monitor.estimates[first_estimate:], monitor.truth[first_truth:])
        fell = contacts > contacts_before or any(s.startswith("fallen") for s in monitor.statuses)
        return RobotGraphResult(
            command=[float(c) for c in command],
            seconds=round(sim_seconds, 4),
            mean_forward_velocity=float(window[:, 2].mean()),
            mean_lateral_velocity=float(window[:, 3].mean()),
            forward_displacement=x_end - x_start,
            min_height=float(window[:, 1].min()),
            fell=bool(fell or window[:, 1].min() < FALL_HEIGHT),
            statuses=list(monitor.statuses),
            safety_counters=policy.loop.safety.counters,
            emulator_steps_behind=int(end["steps_behind"]),
            soft_start_wall_s=round(soft_start_wall_s, 3),
            odometry_samples=len(window),
            odometry=odometry,
            driver_statuses=list(monitor.driver_statuses),
            driver_counters=driver.driver.snapshot(),
            estimator_rate_hz=None if tracking[0] is None else round(tracking[0], 1),
            estimator_rmse=tracking[1],
        )
    finally:
        executor.shutdown()
        if spinner.is_alive():
            spinner.join(timeout=5.0)  # before destroying nodes: no callback may run on a destroyed one
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        if robot is not None:
            robot.close()


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="robot-bridge-robot-graph", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", required=True, help="ONNX file from deploy.export")
    parser.add_argument("--command", type=float, nargs=3, default=(0.5, 0.0, 0.0), metavar=("VX", "VY", "WZ"))
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds with the policy in control")
    parser.add_argument(
        "--odometry",
        choices=ODOMETRY,
        default="estimator",
        help="the policy's odom: the estimator (the real graph) or the emulator's ground truth",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        help="policy watchdog and driver command/state timeouts (s); "
        "default: the nodes' 0.1; 0.3 on a busy machine, whose stalls would trip them",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall-clock second; the graph's rates and timeouts scale with it (for a machine "
        "that cannot hold the 500 Hz loop in real time)",
    )
    gap_names = ("mass_scale", "friction", "motor_strength", "action_latency_s", "sensor_noise")
    for name in gap_names:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, help="dynamics gap (emulator parameter)")
    parser.add_argument("--config-dir", help="the nodes' parameter files (default: share/robot_bridge/config)")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if not args.speed > 0:
        parser.error(f"--speed must be > 0, got {args.speed}")
    gap = {name: getattr(args, name) for name in gap_names if getattr(args, name) is not None}
    policy_params, driver_params = {}, {}
    if args.timeout_s is not None:
        policy_params = {"watchdog_timeout_s": args.timeout_s}
        driver_params = {"command_timeout_s": args.timeout_s, "state_timeout_s": args.timeout_s}
    result = run_robot_graph(
        args.policy,
        command=tuple(args.command),
        seconds=args.seconds,
        odometry=args.odometry,
        gap=gap,
        policy_params=policy_params,
        driver_params=driver_params,
        speed=args.speed,
        config_dir=args.config_dir,
    )
    print(json.dumps(asdict(result)), flush=True)
    return 1 if result.fell else 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "robot-bridge-robot-graph")


if __name__ == "__main__":
    raise SystemExit(main())
