"""benchmarks/finetune_sim.py runs the real learner on gapped simulated robots and reports its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import tiny_bundle  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_finetune_sim_reports_marks_and_the_recovered_fraction(tiny_bundle, tmp_path):  # noqa: F811
    out = tmp_path / "fs"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "finetune_sim.py"), "--bundle", str(tiny_bundle("sac")),
        "--out", str(out), "--transitions", "64", "--marks", "32", "64", "--envs", "2", "--eval-envs", "1",
        "--set", "sim_fill=128", "--set", "learning_starts=16", "--set", "critic_warmup=8",
        "--set", "anchor_weight=0.1", "--gap", json.dumps({"motor_strength": 0.8, "action_latency_s": 0.01}),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["metric"] == "recovered_fraction_sim" and result["baseline"] == result["zero_shot"]["return"]
    assert set(result["marks"]) == {"32", "64"}
    assert 0 < result["marks"]["32"]["updates"] < result["marks"]["64"]["updates"]
    assert result["learner"]["anchor_weight"] == 0.1 and result["gap"]["action_latency_s"] == 0.01
    assert json.loads((out / "result.json").read_text())["marks"] == result["marks"]
    bad = subprocess.run([*command[:2], "--set", "no_such_field=1"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "no LearnerConfig field" in bad.stderr
