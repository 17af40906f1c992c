"""The bridge latency benchmark runs end to end (emulator process, real rclpy, real onnxruntime) and reports JSON.

No timing assertions: latency depends on the box; the numbers live in the README.
"""

from __future__ import annotations

import json
import math
import os
import sys

BENCH_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH_DIR))
import bridge_latency  # noqa: E402


def test_quick_run_prints_one_json_line_with_latencies_and_jitter(capsys):
    result = bridge_latency.main(["--quick"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["metric"] == "bridge_latency_p99_ms"
    for key in ("value", "median_ms", "jitter_p99_ms", "jitter_median_ms", "tick_cpu_p99_ms"):
        assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] >= 0, key
    assert result["median_ms"] <= result["value"] and result["tick_cpu_median_ms"] > 0
    assert 80 <= result["ticks"] <= 110, "50 Hz for 2 s"
    assert result["policy"] in ("reference", "fresh_sac_256x256")
    ordinary = result["ordinary_scheduling"]  # the same measurement at realtime_priority 0
    assert set(ordinary) == set(bridge_latency.COMPARED) and 80 <= ordinary["ticks"] <= 110
    assert result["realtime_priority"] == policy_node_default("realtime_priority"), "the node's default"


def policy_node_default(name: str):
    from robot_bridge.policy_node import PARAMS

    return next(p.default for p in PARAMS if p.name == name)
