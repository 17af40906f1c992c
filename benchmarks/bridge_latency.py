"""Policy node latency: from a JointState arriving to the joint command leaving, and the 50 Hz timer's jitter.

Usage (from the repo root, package installed with the ``ros`` extra)::

    python benchmarks/bridge_latency.py [--policy FILE.onnx | --bundle DIR] [--seconds 20] [--quick]

The emulated A1 runs as its own process (``python -m robot_bridge.emulator_node``, as ``ros2 launch`` would
start it; state published at 200 Hz); the policy node runs in this process on a single-threaded executor,
as its ``main`` does. The policy is ``--policy``, else ``--bundle`` exported, else the committed reference
policy if it exists, else a fresh SAC policy ([256, 256], like ``policy_latency.py``); the command is to stand.
Once the soft start is over, the node's own timestamps (``PolicyNode.timing``, monotonic ns) are read for
``--seconds``:

* latency: arrival of the JointState a tick used (taken in the subscription callback) -> the command
  published (after observation, policy, safety). A tick uses a state under 0.25 ms old or waits for the next.
* jitter: |interval between consecutive control-timer callbacks - 20 ms|.
* tick CPU time (``tick_cpu_*``): the thread's CPU time for observation, policy, safety and publish. Latency
  well above it is time spent waiting for a CPU (other processes), not work done by the node.

The node runs with its default ``realtime_priority`` (SCHED_FIFO 50 for the thread that ticks:
``robot_bridge/realtime.py``), then again at ordinary scheduling (``realtime_priority`` 0; ``--no-compare``
skips it), in the same run; the JSON's ``ordinary_scheduling`` holds the second run's numbers.

Targets: latency p99 < 1 ms, jitter p99 < 2 ms. The last line printed is one JSON object::

    {"metric": "bridge_latency_p99_ms", "value": ..., "median_ms": ..., "jitter_p99_ms": ...,
     "jitter_median_ms": ..., "tick_to_command_p99_ms": ..., "tick_cpu_p99_ms": ..., "ticks": ...,
     "ordinary_scheduling": {"value": ..., ...}, "realtime_priority": 50, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from robot_bridge.realtime import DEFAULT_PRIORITY

os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _policy_file(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    from deploy.export import export_policy
    from pretrain.reference import REFERENCE_BUNDLE

    if args.policy:
        return Path(args.policy), "given"
    parity = {"sim_envs": 2, "sim_steps": 5, "num_random_obs": 64}
    if args.bundle or (REFERENCE_BUNDLE / "meta.json").is_file():
        bundle, name = (Path(args.bundle), "bundle") if args.bundle else (REFERENCE_BUNDLE, "reference")
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from policy_latency import fresh_sac_bundle

        bundle, name = fresh_sac_bundle(workdir / "bundle", [256, 256]), "fresh_sac_256x256"
    export_policy(bundle, workdir / "policy.onnx", **parity)
    return workdir / "policy.onnx", name


COMPARED = ("value", "median_ms", "jitter_p99_ms", "tick_cpu_median_ms", "tick_cpu_p99_ms", "ticks")
"""What the second run, at ordinary scheduling (``realtime_priority`` 0), reports beside the first."""


def _stats_ms(values_ns: np.ndarray) -> tuple[float, float]:
    return float(np.median(values_ns) / 1e6), float(np.percentile(values_ns, 99) / 1e6)


def measure(policy: Path, seconds: float, realtime_priority: int, start_timeout_s: float = 60.0) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from robot_bridge.policy_node import PolicyNode

    emulator = subprocess.Popen([sys.executable, "-m", "robot_bridge.emulator_node"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    executor = SingleThreadedExecutor(context=context)
    params = {"policy_path": str(policy), "realtime_priority": realtime_priority}
    node = PolicyNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while node.loop.safety.counters.get("ticks:running", 0) < 10:
            if time.monotonic() > deadline or emulator.poll() is not None:
                raise RuntimeError(f"the policy never ran: {node.loop.safety.counters}; emulator {emulator.poll()}")
            time.sleep(0.05)
        first = len(node.timing)
        time.sleep(seconds)
        timing = np.array(list(node.timing)[first:], dtype=np.int64)
        counters = node.loop.safety.counters
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        emulator.send_signal(signal.SIGINT)
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
    period_ns = node.loop.contract.policy_dt * 1e9
    latency = timing[:, 2] - timing[:, 1]
    jitter = np.abs(np.diff(timing[:, 0]) - period_ns)
    median, p99 = _stats_ms(latency)
    jitter_median, jitter_p99 = _stats_ms(jitter)
    tick_median, tick_p99 = _stats_ms(timing[:, 2] - timing[:, 0])
    cpu_median, cpu_p99 = _stats_ms(timing[:, 3])
    return {
        "metric": "bridge_latency_p99_ms",
        "value": round(p99, 4),
        "median_ms": round(median, 4),
        "jitter_p99_ms": round(jitter_p99, 4),
        "jitter_median_ms": round(jitter_median, 4),
        "latency_max_ms": round(float(latency.max() / 1e6), 4),
        "tick_to_command_median_ms": round(tick_median, 4),
        "tick_to_command_p99_ms": round(tick_p99, 4),
        "tick_cpu_median_ms": round(cpu_median, 4),
        "tick_cpu_p99_ms": round(cpu_p99, 4),
        "ticks": int(len(timing)),
        "seconds": seconds,
        "safety_counters": counters,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", help="ONNX file from deploy.export")
    parser.add_argument("--bundle", help="bundle to export (default: the reference policy, else fresh SAC)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time with the policy running")
    parser.add_argument("--realtime-priority", type=int, default=DEFAULT_PRIORITY,
                        help=f"the node's realtime_priority in the main run (default {DEFAULT_PRIORITY})")  # fmt: skip
    parser.add_argument("--no-compare", action="store_true", help="skip the second run at ordinary scheduling")
    parser.add_argument("--quick", action="store_true", help="2 s of measurement (tests)")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        policy, name = _policy_file(args, Path(tmp))
        result = measure(policy, seconds, args.realtime_priority)
        if not args.no_compare and args.realtime_priority != 0:
            ordinary = measure(policy, seconds, 0)
            result["ordinary_scheduling"] = {k: ordinary[k] for k in COMPARED}
    result["realtime_priority"] = args.realtime_priority
    result["policy"] = name
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
