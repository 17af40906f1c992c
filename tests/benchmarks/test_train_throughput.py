"""benchmarks/train_throughput.py: sequential vs concurrent training throughput (the numbers are measured by hand
on an idle box; here: the script runs a real training and reads its curve)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
train_throughput = importlib.util.module_from_spec(spec)
sys.modules["train_throughput"] = train_throughput
spec.loader.exec_module(train_throughput)


def test_steps_per_second_come_from_the_first_and_last_curve_rows(tmp_path):
    curve = tmp_path / "curve.csv"
    curve.write_text("time_s,timesteps,episodes\n5.0,1000,3\n10.0,2000,9\n25.0,7000,30\n")
    assert train_throughput.env_steps_per_s(curve) == pytest.approx(6000 / 20)
    curve.write_text("time_s,timesteps,episodes\n5.0,1000,3\n")
    with pytest.raises(RuntimeError, match="too few curve rows"):
        train_throughput.env_steps_per_s(curve)


def test_unknown_variants_and_on_policy_presets_are_refused(capsys):
    for argv in (["--variants", "fast"], ["--preset", "ppo"]):
        with pytest.raises(SystemExit) as exc:
            train_throughput.main(argv)
        assert exc.value.code == 2
    assert "unknown ['fast']" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_concurrent_run_prints_the_json_line(capsys):
    assert train_throughput.main(["--variants", "concurrent", "--seconds", "6", "--repeats", "1"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["metric"] == "train_env_steps_per_s" and last["value"] > 100 and last["baseline"] is None
    assert last["grad_steps_per_s"]["concurrent"] == pytest.approx(last["value"] * 4 / 64, abs=0.06)
