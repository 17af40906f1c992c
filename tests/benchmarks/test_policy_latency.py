"""The policy latency benchmark runs end to end (real export, real onnxruntime, real torch) and reports its JSON.

No timing assertions: latency depends on the box; the numbers live in the README.
"""

from __future__ import annotations

import json
import math
import os
import sys

import torch as th

BENCH_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH_DIR))
import policy_latency  # noqa: E402


def test_quick_run_prints_one_json_line_with_positive_latencies(capsys):
    threads = th.get_num_threads()
    try:
        result = policy_latency.main(["--quick"])
    finally:
        th.set_num_threads(threads)  # the benchmark pins torch to one thread, as a control loop would
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["metric"] == "policy_latency_p99_us"
    for key in ("value", "median_us", "baseline", "ratio", "baseline_median_us", "sb3_predict_p99_us"):
        assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] > 0, key
    assert math.isclose(result["ratio"], result["baseline"] / result["value"], rel_tol=5e-3)
    assert result["median_us"] <= result["value"]
    assert result["calls"] == 200 and result["threads"] == 1
    assert result["policy"] in ("reference", "fresh_sac_256x256")
    if result["policy"] == "fresh_sac_256x256":
        assert result["actor_net_arch"] == [256, 256]
