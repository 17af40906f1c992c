"""benchmarks/time_to_walk.py: the threshold crossing and the JSON line, on curves written by the trainer's writer."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from pretrain.curves import CurveWriter

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("time_to_walk", ROOT / "benchmarks" / "time_to_walk.py")
time_to_walk = importlib.util.module_from_spec(spec)
sys.modules["time_to_walk"] = time_to_walk
spec.loader.exec_module(time_to_walk)


def _write_curve(path: Path, times: list[float], errors: list[float]) -> None:
    path.parent.mkdir(parents=True)
    writer = CurveWriter(path, ["track_lin_vel_xy_exp"])
    for i, (t, err) in enumerate(zip(times, errors, strict=True)):
        writer.write({"time_s": t, "timesteps": 1000 * i, "episodes": i, "ep_return": 1.0 + i, "ep_length": 500.0,
                      "tracking_error": err, "term/track_lin_vel_xy_exp": 0.5})  # fmt: skip
    writer.close()


def test_first_crossing_ratio_and_common_budget(tmp_path, capsys):
    _write_curve(tmp_path / "sac" / "curve.csv", [60, 120, 180, 240], [0.7, 0.4, 0.24, 0.2])
    _write_curve(tmp_path / "ppo" / "curve.csv", [60, 120, 180, 240], [0.5, 0.3, 0.26, 0.1])
    _write_curve(tmp_path / "tqc" / "curve.csv", [60, 120, 180, 240], [0.8, 0.7, 0.6, 0.5])
    assert time_to_walk.main(["--analyze", "--out", str(tmp_path), "--smooth", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["metric"] == "time_to_threshold_s" and result["threshold"] == 0.25
    assert (result["sac_s"], result["ppo_s"], result["tqc_s"]) == (180.0, 240.0, None)
    assert result["ratio"] == 180.0 / 240.0 and result["ratio_tqc"] is None and result["ratio_at_most"] == {}
    assert (tmp_path / "time_to_walk.png").stat().st_size > 10_000

    # Cut at a 3-minute budget, PPO has not crossed yet: no ratio rather than a wrong one.
    assert time_to_walk.main(["--analyze", "--out", str(tmp_path), "--budget-min", "3", "--smooth", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["sac_s"], result["ppo_s"], result["ratio"]) == (180.0, None, None)
    assert result["ratio_at_most"] == {"sac": 1.0}  # PPO not under the threshold within its 180 s


def test_train_command_is_the_real_cli():
    cmd = time_to_walk.train_command("sac", "sac", 5.0, 1, Path("out"))
    assert cmd[1:4] == ["-m", "pretrain", "train"] and "--preset" in cmd and "--minutes" in cmd
    from pretrain.train import parse

    config, _ = parse(cmd[4:])
    assert (config.algo, config.minutes, config.seed, config.torch_threads, config.env.threads) == ("sac", 5.0, 1, 1, 1)
    assert (config.env.randomize, config.env.obs_noise) == (False, False)  # nominal by default
    config, _ = parse(time_to_walk.train_command("ppo", "ppo", 5.0, 1, Path("out"), "training")[4:])
    assert config.algo == "ppo" and config.env.randomize and config.env.obs_noise


def test_smoothing_ignores_a_single_lucky_window(tmp_path, capsys):
    _write_curve(tmp_path / "sac" / "curve.csv", [60, 120, 180, 240, 300], [0.8, 0.1, 0.8, 0.2, 0.2])
    assert time_to_walk.main(["--analyze", "--out", str(tmp_path), "--algos", "sac"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # trailing means over 3 rows: 0.8, 0.45, 0.567, 0.367, 0.4 -> never under 0.25; under 0.4 first at 240 s
    assert result["sac_s"] is None and result["smoothing_rows"] == 3
    assert result["time_to_s_at"]["0.4"]["sac"] == 240.0 and result["time_to_s_at"]["0.5"]["sac"] == 120.0
