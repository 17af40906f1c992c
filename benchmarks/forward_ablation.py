"""Which part of the task keeps SAC from walking forward? Same-budget runs that switch one factor each.

Each variant is ``a1-pretrain --preset sac`` plus a few flags, trained for ``--minutes`` of wall-clock on one
core (``--jobs`` at a time), then judged by what the policy does, not its return: the grid evaluation
(``python -m pretrain evaluate``, nominal and training conditions) gives the forward speed at 0.5 m/s, the worst
linear tracking error over the grid, falls, and the fraction of saturated actions (a squashed policy stuck at its
bounds). Prints a markdown table and, last, one JSON line.

    python benchmarks/forward_ablation.py --minutes 30 --variants full,nominal,unclipped
    python benchmarks/forward_ablation.py --evaluate-only --runs runs/ablation      # re-judge finished runs

Variants (``--list``): ``full`` is the default task and preset (randomization, noise, bounds clipped to the
joint-target limits); the others change one thing. Run directories: ``<runs>/<variant>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from pretrain.jobs import Job, run_jobs

REPO = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, list[str]] = {
    "full": [],
    "nominal": ["--env.randomize", "false", "--env.obs_noise", "false"],
    "nominal_noise": ["--env.randomize", "false"],
    "no_noise": ["--env.obs_noise", "false"],
    "isaaclab2": ["--env.contract", "isaaclab2"],
    "unclipped": ["--bounds.clip_to_targets", "false"],
    "joint_limits": ["--bounds.method", "joint_limits"],
    "symmetric_2": ["--bounds.method", "symmetric", "--bounds.width", "2.0"],
    "isaaclab3_bounds": ["--bounds.method", "isaaclab3"],
    "critic_layer_norm": ["--offpolicy.critic_layer_norm", "true"],
}


def train_job(name: str, minutes: float, root: Path, seed: int) -> Job:
    cmd = [sys.executable, "-m", "pretrain", "train", "--preset", "sac", "--minutes", str(minutes),
           "--seed", str(seed), "--out", str(root / name), "--torch_threads", "1", "--env.threads", "1",
           "--no-progress", *VARIANTS[name]]  # fmt: skip
    return Job(name, cmd, root / f"{name}.log", cwd=REPO)


def judge(run: Path, robots: int, seconds: float) -> dict:
    out = run / "evaluation"
    cmd = [sys.executable, "-m", "pretrain", "evaluate", str(run / "checkpoints" / "latest"), "--robots", str(robots),
           "--seconds", str(seconds), "--out", str(out), "--json"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode not in (0, 1):
        raise RuntimeError(f"evaluate failed on {run}: {res.stderr.strip().splitlines()[-1:]}")
    doc = json.loads((out / "evaluation.json").read_text())
    meta = json.loads((run / "checkpoints" / "latest" / "meta.json").read_text())
    row = {"timesteps": int(meta["num_timesteps"])}
    for cond, s in doc["conditions"].items():
        row[cond] = {
            "forward_0_5": round(s["forward_0_5_speed"], 3),
            "lin_error_max": round(s["grid_tracking_error_max"], 3),
            "yaw_error_max": round(s["yaw_error_max"], 3),
            "falls": s["falls"],
            "return_20s": round(s["return_20s"], 2),
            "saturated": round(s["saturated"], 3),
            "speeds": {str(p["command"]): round(p["speed_along"], 2) for p in s["points"]},
        }
    return row


def table(rows: dict[str, dict]) -> str:
    head = ("| variant | steps | fwd 0.5 (nom / train) | worst lin err (nom / train) | falls (train) | "
            "saturated (train) | speeds along -1, -0.5, 0.25, 0.5, 1 (train) |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        n, t = r["nominal"], r["training"]
        speeds = ", ".join(f"{t['speeds'][str([v, 0.0, 0.0])]:+.2f}" for v in (-1.0, -0.5, 0.25, 0.5, 1.0))
        lines.append(
            f"| {name} | {r['timesteps'] / 1e6:.2f} M | {n['forward_0_5']:+.2f} / {t['forward_0_5']:+.2f} | "
            f"{n['lin_error_max']:.2f} / {t['lin_error_max']:.2f} | {t['falls']} | {t['saturated']:.2f} | {speeds} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--variants", default="full,nominal,unclipped,isaaclab2", help="comma-separated (--list)")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock per variant")
    parser.add_argument("--jobs", type=int, default=2, help="variants trained at once (one core each)")
    parser.add_argument("--runs", default="runs/ablation", help="directory of the run directories")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--robots", type=int, default=2, help="robots per grid command in the evaluation")
    parser.add_argument("--seconds", type=float, default=12.0, help="evaluated seconds per condition")
    parser.add_argument("--evaluate-only", action="store_true", help="judge the run directories already there")
    parser.add_argument("--list", action="store_true", help="print the variants and their flags")
    args = parser.parse_args(argv)
    if args.list:
        for name, flags in VARIANTS.items():
            print(f"{name:18s} {' '.join(flags) or '(the default task and sac preset)'}")
        return 0
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or args.minutes <= 0 or args.jobs < 1:
        parser.error(f"unknown variants {unknown} (see --list)" if unknown else "--minutes and --jobs must be > 0")
    root = Path(args.runs)
    if args.evaluate_only:
        names = [n for n in names if (root / n / "checkpoints" / "latest").exists()]
    else:
        run_jobs(
            [train_job(name, args.minutes, root, args.seed) for name in names],
            args.jobs,
            on_done=lambda job, code, minutes: print(
                f"[{minutes:5.1f} min] {job.name} finished (exit {code})", flush=True
            ),
        )
    rows = {name: judge(root / name, args.robots, args.seconds) for name in names}
    print(table(rows))
    print(json.dumps({"metric": "forward_ablation", "minutes": args.minutes, "variants": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
