"""benchmarks/bounds_ablation.py: the bounds each method trains with, the blog's initial-action gap, the JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pretrain.action_diagnostics import GROUPS, initial_distributions, initial_stats
from pretrain.curves import CurveWriter
from pretrain.train import parse

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bounds_ablation.py"


def load():
    spec = importlib.util.spec_from_file_location("bounds_ablation", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bounds_ablation"] = module
    spec.loader.exec_module(module)
    return module


bench = load()


def _initial(method: str) -> dict:
    bounds, contract = bench.method_bounds(method)
    return initial_stats(bounds, contract, initial_distributions(bounds, n=20_000, seed=0, clip=False))


def test_width_100_puts_sac_s_first_actions_far_beyond_the_joints_and_unit_bounds_do_not():
    wide, unit = _initial("symmetric_100"), _initial("isaaclab3")
    # Unclipped, as Isaac Lab 2.x's wrapper exposed it (clipped, width 100 would be the joint-target limits).
    assert wide["low"] == [-100.0] * 12 and wide["high"] == [100.0] * 12
    assert unit["low"] == [-1.0] * 12 and unit["high"] == [1.0] * 12
    # tanh(N(0, 1)) rescaled to +-100: almost every sample is a clamped, dead joint target.
    assert wide["sac_within_targets"] < 0.1 and unit["sac_within_targets"] == 1.0
    for group in GROUPS:
        lo, hi = wide["p2_5_p97_5"][group]["sac"]
        assert lo < -80 and hi > 80, group
        ppo_lo, ppo_hi = wide["p2_5_p97_5"][group]["ppo"]
        assert ppo_lo == pytest.approx(-1.96, abs=0.1) and ppo_hi == pytest.approx(1.96, abs=0.1), group
        assert unit["p2_5_p97_5"][group]["ppo"] == wide["p2_5_p97_5"][group]["ppo"]  # PPO ignores SAC's bounds
    assert wide["ppo_within_targets"] > 0.95


def test_every_method_runs_the_real_cli_with_its_own_bounds(tmp_path):
    configs = {}
    for algo in ("sac", "tqc"):
        for method in bench.METHODS:
            cmd = bench.train_command(algo, method, 2.5, 3, tmp_path / method)
            assert cmd[1:4] == ["-m", "pretrain", "train"]
            config, _ = parse(cmd[4:])
            assert (config.algo, config.minutes, config.seed, config.torch_threads, config.env.threads) == (
                algo, 2.5, 3, 1, 1)  # fmt: skip
            assert (config.env.randomize, config.env.obs_noise) == (False, False), "nominal is the default"
            assert config.bounds.clip_to_targets == (method == "default"), method
            configs[(algo, method)] = config
    assert configs[("sac", "symmetric_100")].bounds.width == 100.0
    assert len({repr(c) for c in configs.values()}) == len(configs)
    config, _ = parse(bench.train_command("sac", "default", 1.0, 0, tmp_path, "training")[4:])
    assert (config.env.randomize, config.env.obs_noise) == (True, True)
    default, _ = bench.method_bounds("default")
    unclipped, contract = bench.method_bounds("ppo_percentile")
    lo, hi = contract.raw_target_limits()
    assert (np.asarray(default.high) <= hi).all() and (np.asarray(unclipped.high) > hi).any()


def _curve(run: Path, times: list[float], errors: list[float]) -> None:
    run.mkdir(parents=True)
    writer = CurveWriter(run / "curve.csv", ["track_lin_vel_xy_exp"])
    for i, (t, err) in enumerate(zip(times, errors, strict=True)):
        writer.write({"time_s": t, "timesteps": 1000 * i, "episodes": i, "ep_return": 10 * (1 - err),
                      "ep_length": 500.0, "tracking_error": err})  # fmt: skip
    writer.close()


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_analyze_reads_curves_then_prefers_the_grid_evaluation(tmp_path, capsys):
    times = [60.0, 120.0, 180.0, 240.0]
    _curve(tmp_path / "sac" / "symmetric_100" / "seed0", times, [0.8, 0.7, 0.7, 0.7])
    _curve(tmp_path / "sac" / "default" / "seed0", times, [0.5, 0.2, 0.2, 0.2])
    argv = ["--analyze", str(tmp_path), "--methods", "symmetric_100,default", "--smooth", "1"]
    assert bench.main(argv) == 0
    res = _last_json(capsys)
    assert (res["metric"], res["source"], res["value"], res["baseline"]) == ("bounds_ablation", "curve", 0.7, 0.2)
    assert res["baseline_method"] == "sac/default" and res["ratio"] == 3.5
    wide, default = res["methods"]["sac/symmetric_100"], res["methods"]["sac/default"]
    assert wide["time_under_threshold_s"] is None and wide["reached"] == "0/1"
    assert default["time_under_threshold_s"] == 120.0 and default["falls"] is None
    assert res["initial"]["symmetric_100"]["sac_within_targets"] < 0.1
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "initial_actions.png").stat().st_size > 10_000

    # With a (cached) grid evaluation for every run, the evaluation judges, and the final actions are plotted.
    for method, err, at_bound, raw in (("symmetric_100", 0.6, 0.7, 100.0), ("default", 0.1, 0.0, 1.0)):
        run = tmp_path / "sac" / method / "seed0"
        (run / "checkpoints" / "latest").mkdir(parents=True)
        np.save(run / "final_actions.npy", np.random.default_rng(0).uniform(-raw, raw, (500, 12)))
        doc = {"tracking_error": err, "return_20s": 20 * (1 - err), "falls": 3 if raw > 1 else 0,
               "at_bound": at_bound, "bounds": {"method": method, "low": [-raw] * 12, "high": [raw] * 12}}  # fmt: skip
        (run / "bounds_ablation_eval.json").write_text(json.dumps(doc))
    assert bench.main(argv) == 0
    res = _last_json(capsys)
    assert (res["source"], res["value"], res["baseline"], res["ratio"]) == ("evaluation", 0.6, 0.1, 6.0)
    assert res["methods"]["sac/symmetric_100"]["falls"] == 3 and res["methods"]["sac/default"]["at_bound"] == 0.0
    assert (tmp_path / "actions_after_training.png").stat().st_size > 10_000


def test_bad_flags_are_refused_in_one_line(tmp_path, capsys):
    for argv in (["--minute", "3"], ["--conditions", "rough"]):
        with pytest.raises(SystemExit) as exc:
            bench.main(argv)
        assert exc.value.code == 2, argv
    capsys.readouterr()
    run = tmp_path / "sac" / "default" / "seed0"
    run.mkdir(parents=True)
    (run / "curve.csv").write_text("time_s\n")
    for argv in (["--methods", "symmetric_100,nope"], ["--algos", "sac,ppo"], ["--minutes", "0"], ["--jobs", "0"],
                 ["--seeds", "0,x"], ["--analyze", str(tmp_path / "missing")],
                 ["--methods", "default", "--out", str(tmp_path)]):  # fmt: skip
        assert bench.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("benchmarks/bounds_ablation.py: error:") and "\n" not in err, err
    assert bench.main(["--list"]) == 0 and "symmetric_100" in capsys.readouterr().out


@pytest.mark.slow
def test_a_tiny_real_run_trains_evaluates_and_reports(tmp_path, capsys):
    argv = ["--methods", "symmetric_100", "--minutes", "0.02", "--jobs", "1", "--out", str(tmp_path),
            "--robots", "1", "--seconds", "3"]  # fmt: skip
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "finished (exit 0) sac/symmetric_100 seed 0" in out
    res = json.loads(out.strip().splitlines()[-1])
    row = res["methods"]["sac/symmetric_100"]["seeds"][0]
    assert res["source"] == "evaluation" and row["timesteps"] > 0 and 0 <= row["at_bound"] <= 1
    assert (tmp_path / "sac" / "symmetric_100" / "seed0" / "actions_final.png").exists()
