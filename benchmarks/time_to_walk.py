"""Wall-clock to walk: SAC, TQC and PPO from scratch on the embedded simulator, same budget, same box.

Each algorithm trains with its preset through the real CLI (``python -m pretrain train``), one core
each (``--torch_threads 1 --env.threads 1``), for ``--minutes``. Up to ``--parallel`` runs share the
box at once (2 on a 2-core machine: each still gets one core). The metric is the velocity-tracking
error (mean over an episode of |command_xy - body velocity_xy|, m/s; a robot that stands still scores
about 0.6 here, so return alone can flatter a robot that stands): the wall-clock at which the curve
first drops under ``--threshold`` (trailing mean over ``--smooth`` curve rows, each row the mean of
the episodes that ended in ~20 s, so one lucky window does not count).

Prints per algorithm the curves of episode return and tracking error, writes
``time_to_walk.png`` beside the runs, and, last line, JSON::

    {"metric": "time_to_threshold_s", "threshold": 0.25, "sac_s": ..., "tqc_s": ..., "ppo_s": ...,
     "ratio": sac_s/ppo_s, "ratio_tqc": tqc_s/ppo_s}

(null where not reached). When PPO does not reach the threshold within its budget, ``ratio_at_most`` gives
``time / PPO's budget`` for the others: their ratio is below it. ``--analyze DIR`` re-reads finished runs without
training.

    python benchmarks/time_to_walk.py --minutes 45 --out runs/time_to_walk

``--conditions`` (default ``nominal``: nominal dynamics, no observation noise, as the first stage of the
committed reference) picks the task; ``training`` keeps the presets' randomization and noise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from pretrain.config import DEFAULT_PRESET
from pretrain.curves import plot_curves, read_curve
from pretrain.jobs import Job, run_jobs

# The task each algorithm learns. ``nominal``: nominal dynamics, no observation noise -- the first stage of the
# committed reference (from scratch under full randomization and noise SAC learns to stand still: README).
# ``training``: the presets' own randomization and noise.
CONDITIONS = {
    "nominal": ["--env.randomize", "false", "--env.obs_noise", "false"],
    "training": [],
}


def train_command(
    algo: str, preset: str, minutes: float, seed: int, out: Path, conditions: str = "nominal"
) -> list[str]:
    return [
        sys.executable, "-m", "pretrain", "train", "--preset", preset, "--minutes", str(minutes), "--seed", str(seed),
        "--out", str(out), "--no-progress", "--torch_threads", "1", "--env.threads", "1", "--log_every_s", "20",
        *CONDITIONS[conditions],
    ]  # fmt: skip


def smoothed(values: list[float], window: int) -> list[float]:
    """Trailing mean over ``window`` curve rows (each row already averages the episodes of ~20 s)."""
    out = []
    for i in range(len(values)):
        recent = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
        out.append(sum(recent) / len(recent) if recent else math.nan)
    return out


def time_to_threshold(curve: dict[str, list[float]], threshold: float, window: int = 3) -> float | None:
    """Wall-clock at which the trailing mean of the tracking error first drops under ``threshold``."""
    errors = smoothed(curve.get("tracking_error", []), window)
    for t, err in zip(curve.get("time_s", []), errors, strict=True):
        if math.isfinite(err) and err < threshold:
            return float(t)
    return None


def status_line(algo: str, curve: dict[str, list[float]]) -> str:
    if not curve:
        return f"{algo}: starting"
    return (
        f"{algo}: {curve['time_s'][-1] / 60:5.1f} min, {curve['timesteps'][-1]:>9.0f} steps, "
        f"return {curve['ep_return'][-1]:7.2f}, tracking error {curve['tracking_error'][-1]:.3f} m/s"
    )


def run_all(
    algos: list[str],
    presets: dict[str, str],
    minutes: float,
    seed: int,
    out: Path,
    parallel: int,
    conditions: str = "nominal",
) -> None:
    def progress(job: Job) -> None:
        curve_file = out / job.name / "curve.csv"
        print(status_line(job.name, read_curve(curve_file) if curve_file.exists() else {}), flush=True)

    jobs = [Job(a, train_command(a, presets[a], minutes, seed, out / a, conditions), out / f"{a}.log") for a in algos]
    for job in jobs:
        print("$ " + " ".join(job.cmd[1:]), flush=True)
    codes = run_jobs(jobs, parallel, on_poll=progress)
    failed = [f"{name} (exit {code}; see {out / name}.log)" for name, code in codes.items() if code]
    if failed:
        raise RuntimeError(f"training failed: {', '.join(failed)}")


def report(
    algos: list[str], out: Path, threshold: float, every_s: float = 120.0, budget_min: float = 0.0, window: int = 3
) -> dict:
    """Curves, plot and result; ``budget_min`` > 0 cuts every curve at that wall-clock (a common budget)."""
    curves = {}
    for algo in algos:
        path = out / algo / "curve.csv"
        curve = read_curve(path) if path.exists() else {}
        if curve and budget_min > 0:
            keep = [i for i, t in enumerate(curve["time_s"]) if t <= budget_min * 60.0]
            curve = {key: [values[i] for i in keep] for key, values in curve.items()}
        curves[algo] = curve
    for algo, curve in curves.items():
        print(f"\n{algo} ({out / algo}):")
        print(f"  {'min':>5} {'steps':>10} {'return':>8} {'track err':>9} {'ep len':>7}")
        next_t = 0.0
        for i, t in enumerate(curve.get("time_s", [])):
            if t >= next_t or i == len(curve["time_s"]) - 1:
                print(f"  {t / 60:5.1f} {curve['timesteps'][i]:>10.0f} {curve['ep_return'][i]:>8.2f} "
                      f"{curve['tracking_error'][i]:>9.3f} {curve['ep_length'][i]:>7.0f}")  # fmt: skip
                next_t = t + every_s
    plot_curves(curves, out / "time_to_walk.png", title="time to walk (embedded MuJoCo, 1 core each)",
                threshold=threshold)  # fmt: skip
    times = {algo: time_to_threshold(curve, threshold, window) for algo, curve in curves.items()}
    result: dict = {"metric": "time_to_threshold_s", "threshold": threshold}
    for algo in ("sac", "tqc", "ppo"):
        result[f"{algo}_s"] = times.get(algo)
    ppo = result["ppo_s"]
    result["ratio"] = result["sac_s"] / ppo if result["sac_s"] and ppo else None
    result["ratio_tqc"] = result["tqc_s"] / ppo if result["tqc_s"] and ppo else None
    # PPO never under the threshold: its time is beyond its budget, so the ratio is below time / budget.
    ppo_budget = curves.get("ppo", {}).get("time_s", [None])[-1] if curves.get("ppo") else None
    result["ratio_at_most"] = {
        algo: round(result[f"{algo}_s"] / ppo_budget, 3)
        for algo in ("sac", "tqc")
        if ppo is None and ppo_budget and result[f"{algo}_s"]
    }
    result["budget_min"] = {a: round(c["time_s"][-1] / 60, 1) if c else None for a, c in curves.items()}
    result["smoothing_rows"] = window
    result["final_tracking_error"] = {
        a: round(smoothed(c["tracking_error"], window)[-1], 4) if c else None for a, c in curves.items()
    }
    # Looser thresholds: where each algorithm got to when none reaches the real one within the budget.
    result["time_to_s_at"] = {
        str(level): {a: time_to_threshold(c, level, window) for a, c in curves.items()} for level in (0.6, 0.5, 0.4)
    }
    print(f"\nplot: {out / 'time_to_walk.png'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=40.0, help="wall-clock budget per algorithm")
    parser.add_argument("--algos", nargs="+", default=["sac", "ppo", "tqc"], choices=["sac", "tqc", "ppo"])
    parser.add_argument("--preset", action="append", default=[], metavar="ALGO=PRESET", help="e.g. sac=sac_raffin_a1")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one core each)")
    parser.add_argument("--threshold", type=float, default=0.25, help="tracking error, m/s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--conditions",
        choices=sorted(CONDITIONS),
        default="nominal",
        help="task to learn: nominal dynamics without observation noise (the reference's first stage), "
        "or the presets' randomization and noise",
    )
    parser.add_argument("--out", default="runs/time_to_walk")
    parser.add_argument("--analyze", action="store_true", help="only report on finished runs in --out")
    parser.add_argument("--budget-min", type=float, default=0.0, help="cut all curves at this wall-clock (analysis)")
    parser.add_argument("--smooth", type=int, default=3, help="trailing mean over this many curve rows")
    args = parser.parse_args(argv)
    presets = dict(DEFAULT_PRESET)
    presets.update(dict(item.split("=", 1) for item in args.preset))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.analyze:
        run_all(args.algos, presets, args.minutes, args.seed, out, args.parallel, args.conditions)
    print(json.dumps(report(args.algos, out, args.threshold, budget_min=args.budget_min, window=args.smooth)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
