"""Does SAC learn with Isaac Lab 2.x's action bounds? The blog's Part I action-bounds ablation, on this box.

Raffin ("Getting SAC to Work on a Massive Parallel Simulator", Part I; ../shared/design/OFFPOLICY_ANCHORS.md (a))
found that SAC learned nothing on Isaac Lab's A1 because the SB3 wrapper exposed ``Box(-100, 100)``: SAC squashes
a Gaussian with tanh and rescales it to the bounds, so it explores joint targets of +-25 rad, while PPO's
unbounded N(0, 1) stays within a few raw units. This script trains SAC (``--algos sac,tqc`` adds TQC) from
scratch under each bounds method (``--list``), same preset, same wall-clock budget (``--minutes``), same seeds,
``--jobs`` at a time on one core each, through the real CLI (``python -m pretrain train``); every method but
``default`` leaves the bounds unclipped (``--bounds.clip_to_targets false``), as the blog and FastSAC had them.

``--conditions nominal`` (the default) trains without domain randomization and observation noise: on this box
SAC from scratch under full randomization and noise learns a "statue" in 30 min, nominal SAC walks in ~35 min
(so give ``--minutes 40`` to see the good methods cross ``--threshold``). ``--conditions training`` uses the
task's training conditions.

Writes to ``--out`` (default runs/bounds_ablation), run directories ``<algo>/<method>/seed<N>/``:

* ``learning_curves.png``: return, tracking error and episode length vs wall-clock, all runs on one figure;
* ``initial_actions.png``: the blog's figure, computed from the bounds (no training): PPO's N(0, 1) in raw units
  vs SAC's tanh(N(0, ``--sac-std``)) rescaled to each method's bounds, per joint group (hip, thigh, calf),
  the bounds and the joint-target limits marked;
* ``actions_after_training.png`` (and ``<run>/actions_final.png`` per joint): the final policy's actions over a
  grid evaluation (``pretrain/evaluate_grid.py``, the trained condition) against the bounds.

Prints a progress line per finished run, a table, and last one JSON line: per run label (``sac/<method>``) the
tracking error, return and falls of the grid evaluation (mean over seeds), the time under ``--threshold`` on the
learning curve (null if never), the fraction of actions at a bound; then ``"metric": "bounds_ablation"``,
``"value"`` (tracking error of width 100), ``"baseline"`` (the best method's), ``"ratio"`` (value/baseline).

Cost on a 2-core box: ceil(runs / jobs) x ``--minutes`` of training plus about a minute per run (start-up, grid
evaluation); the default 5 methods x 30 min at ``--jobs 2`` take about 1 h 40 min, ``--algos sac,tqc`` twice that.

    python benchmarks/bounds_ablation.py --minutes 30 --jobs 2
    python benchmarks/bounds_ablation.py --analyze runs/bounds_ablation     # re-read finished runs
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np

from a1_common.cli import ArgumentParser, UsageError, run_main
from a1_contract import ActionBounds, TaskContract
from pretrain.action_diagnostics import (
    bounds_usage,
    initial_distributions,
    initial_stats,
    plot_action_histograms,
    plot_groups,
)
from pretrain.config import DEFAULT_PRESET
from pretrain.curves import plot_curves, read_curve
from pretrain.jobs import Job, run_jobs

REPO = Path(__file__).resolve().parents[1]
PROG = "benchmarks/bounds_ablation.py"


def _sibling(name: str):
    """Another benchmark script of this folder as a module (they are scripts, not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


time_to_walk = _sibling("time_to_walk")

UNCLIPPED = ["--bounds.clip_to_targets", "false"]
METHODS: dict[str, list[str]] = {
    "symmetric_100": ["--bounds.method", "symmetric", "--bounds.width", "100", *UNCLIPPED],  # Isaac Lab 2.x SB3
    "isaaclab3": ["--bounds.method", "isaaclab3", *UNCLIPPED],  # Isaac Lab 3.0's SB3 wrapper: [-1, 1]
    "ppo_percentile": ["--bounds.method", "ppo_percentile", *UNCLIPPED],  # the blog's Part II values
    "joint_limits": ["--bounds.method", "joint_limits", *UNCLIPPED],  # FastSAC's
    "default": [],  # the project's: ppo_percentile clipped to the joint-target limits
}
WIDE = "symmetric_100"


def train_command(
    algo: str, method: str, minutes: float, seed: int, out: Path, condition: str = "nominal", timesteps: int = 0
) -> list:
    """The real training CLI for one run: the algorithm's preset, one core, the method's bounds flags; with
    ``timesteps`` the run also stops after that many transitions (whichever limit comes first)."""
    cmd = time_to_walk.train_command(algo, DEFAULT_PRESET[algo], minutes, seed, out, condition) + METHODS[method]
    return cmd + (["--timesteps", str(timesteps)] if timesteps else [])


def method_bounds(method: str, algo: str = "sac") -> tuple[ActionBounds, TaskContract]:
    """The bounds a method trains with (parsed and resolved as ``pretrain train`` does) and the task contract."""
    from a1_contract.variants import get_contract
    from pretrain.bounds import resolve_bounds
    from pretrain.train import parse

    config, _ = parse(train_command(algo, method, 1.0, 0, Path("unused"))[4:])
    contract = get_contract(config.env.contract)
    return resolve_bounds(config.bounds, contract), contract


def evaluate_run(run: Path, condition: str, robots: int, seconds: float) -> dict:
    """Grid evaluation of the run's final checkpoint under ``condition``, recording the actions it takes."""
    from a1_common.bundle import BundlePolicy
    from pretrain.evaluate_grid import DEFAULT_GRID, evaluate_condition

    policy = BundlePolicy(run / "checkpoints" / "latest")
    taken: list[np.ndarray] = []

    def act(obs: np.ndarray) -> np.ndarray:
        taken.append(policy(obs))
        return taken[-1]

    res = evaluate_condition(act, policy.contract, list(DEFAULT_GRID), condition=condition,
                             robots_per_command=robots, seconds=seconds)  # fmt: skip
    bounds = policy.contract.action_bounds
    raw = bounds.to_raw(np.concatenate(taken))
    usage = bounds_usage(raw, bounds, joint_names=policy.contract.joint_names)
    lo, hi = policy.contract.raw_target_limits()
    np.save(run / "final_actions.npy", raw.astype(np.float32))
    plot_action_histograms(raw, bounds, policy.contract.joint_names, run / "actions_final.png",
                           title=f"final policy's actions vs bounds ({run})")  # fmt: skip
    summary = res.summary
    doc = {
        "condition": condition,
        "timesteps": int(policy.files.meta.get("num_timesteps", 0)),
        "tracking_error": round(float(np.mean([p.lin_error for p in res.points])), 4),
        "tracking_error_max": round(summary["grid_tracking_error_max"], 4),
        "return_20s": round(summary["return_20s"], 3),
        "falls": int(summary["falls"]),
        "at_bound": round(usage["summary"]["mean_saturated_fraction"], 4),
        "outside_targets": round(float(((raw < lo) | (raw > hi)).mean()), 4),
        "mean_used_fraction": round(usage["summary"]["mean_used_fraction"], 4),
        "bounds": {"method": bounds.method, "low": list(bounds.low), "high": list(bounds.high)},
    }
    (run / "bounds_ablation_eval.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def run_dir(out: Path, algo: str, method: str, seed: int) -> Path:
    return out / algo / method / f"seed{seed}"


def train_all(runs: list[tuple[str, str, int]], args) -> dict[str, int]:
    """Trains ``runs`` (algo, method, seed), ``args.jobs`` at a time; returns the exit code of each label."""
    jobs, outs = [], {}
    for algo, method, seed in runs:
        out = run_dir(Path(args.out), algo, method, seed)
        cmd = train_command(algo, method, args.minutes, seed, out, args.conditions, args.timesteps)
        label = f"{algo}/{method} seed {seed}"
        jobs.append(Job(label, cmd + (["--overwrite"] if args.overwrite else []), out.parent / f"seed{seed}.log", REPO))
        outs[label] = out

    def done(job: Job, code: int, minutes: float) -> None:
        curve = read_curve(outs[job.name] / "curve.csv") if (outs[job.name] / "curve.csv").exists() else {}
        print(f"[{minutes:5.1f} min] finished (exit {code}) {time_to_walk.status_line(job.name, curve)}", flush=True)

    return run_jobs(jobs, args.jobs, on_done=done)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def read_run(run: Path, args) -> tuple[dict, dict, ActionBounds | None]:
    """(curve, row, bounds) of one run directory: learning-curve numbers, plus the grid evaluation of its final
    checkpoint (cached in ``bounds_ablation_eval.json``; evaluated now when missing or ``args.reevaluate``)."""
    curve = read_curve(run / "curve.csv") if (run / "curve.csv").exists() else {}
    row: dict = {"time_under_threshold_s": None, "curve_tracking_error": None, "curve_return": None}
    if curve:
        final = {k: time_to_walk.smoothed(curve[k], args.smooth)[-1] for k in ("tracking_error", "ep_return")}
        row["time_under_threshold_s"] = time_to_walk.time_to_threshold(curve, args.threshold, args.smooth)
        row["curve_tracking_error"] = round(final["tracking_error"], 4)
        row["curve_return"] = round(final["ep_return"], 3)
        row["minutes"] = round(curve["time_s"][-1] / 60, 2)
    cached, bounds = run / "bounds_ablation_eval.json", None
    if (run / "checkpoints" / "latest").exists():
        if args.reevaluate or not cached.exists():
            evaluate_run(run, args.conditions, args.robots, args.seconds)
        ev = json.loads(cached.read_text())
        b = ev.pop("bounds")
        bounds = ActionBounds(tuple(b["low"]), tuple(b["high"]), b["method"])
        row.update(ev)
    return curve, row, bounds


def summarize(per_seed: list[dict]) -> dict:
    """Mean over seeds; the time under the threshold only when every seed got there (else null)."""
    times = [r["time_under_threshold_s"] for r in per_seed]
    return {
        "tracking_error": _mean([r.get("tracking_error") for r in per_seed]),
        "return": _mean([r.get("return_20s") for r in per_seed]),
        "falls": _mean([r.get("falls") for r in per_seed]),
        "time_under_threshold_s": None if None in times else _mean(times),
        "reached": f"{sum(t is not None for t in times)}/{len(times)}",
        "curve_tracking_error": _mean([r["curve_tracking_error"] for r in per_seed]),
        "curve_return": _mean([r["curve_return"] for r in per_seed]),
        "at_bound": _mean([r.get("at_bound") for r in per_seed]),
        "seeds": per_seed,
    }


def headline(results: dict[str, dict], algos: list[str]) -> dict:
    """Width 100's tracking error against the best method's, per algorithm; the first algorithm's on top.

    The judge is the grid evaluation when every run has one, else the learning curve (one source for all)."""
    source = "evaluation" if all(r["tracking_error"] is not None for r in results.values()) else "curve"
    key = "tracking_error" if source == "evaluation" else "curve_tracking_error"
    by_algo = {}
    for algo in algos:
        scored = {k: r[key] for k, r in results.items() if k.startswith(f"{algo}/") and r[key] is not None}
        if scored:
            best = min(scored, key=scored.get)
            value = scored.get(f"{algo}/{WIDE}")
            ratio = round(value / scored[best], 3) if value is not None and scored[best] > 0 else None
            by_algo[algo] = {"value": value, "baseline": scored[best], "baseline_method": best, "ratio": ratio}
    head = {"metric": "bounds_ablation", "value": None, "baseline": None, "baseline_method": None, "ratio": None}
    head.update(by_algo.get(algos[0], {}))
    return {**head, "algo": algos[0], "source": source, "by_algo": by_algo}


def report(algos: list[str], methods: list[str], seeds: list[int], args) -> dict:
    """Re-reads every run under ``args.out``, writes the figures, returns the result (the JSON line)."""
    out = Path(args.out)
    curves, finals, results = {}, {}, {}
    for algo in algos:
        for method in methods:
            per_seed = []
            for seed in seeds:
                run = run_dir(out, algo, method, seed)
                curve, row, bounds = read_run(run, args)
                curves[f"{algo}/{method} s{seed}"] = curve
                if bounds is not None:
                    finals[f"{algo}/{method} s{seed}"] = (bounds, {"final policy": np.load(run / "final_actions.npy")})
                if curve or "tracking_error" in row:
                    per_seed.append({"seed": seed, **row})
            if per_seed:
                results[f"{algo}/{method}"] = summarize(per_seed)
    if not results:
        raise FileNotFoundError(f"no runs of {algos} x {methods} x seeds {seeds} under {out}")
    title = f"bounds ablation ({args.conditions} conditions, 1 core per run)"
    plot_curves({k: c for k, c in curves.items() if c}, out / "learning_curves.png", title=title,
                threshold=args.threshold)  # fmt: skip
    initial, rows = {}, {}
    for method in methods:
        bounds, contract = method_bounds(method)
        d = initial_distributions(bounds, sac_std=args.sac_std, n=20_000, seed=0, clip=False)
        initial[method] = initial_stats(bounds, contract, d)
        rows[method] = (bounds, {"PPO N(0, 1)": d["ppo"], f"SAC tanh(N(0, {args.sac_std:g})) -> bounds": d["sac"]})
    figures = [out / "learning_curves.png", out / "initial_actions.png"]
    plot_groups(rows, contract, figures[-1], "Initial actions in raw units: PPO's Gaussian vs SAC's squashed "
                "Gaussian rescaled to the bounds")  # fmt: skip
    if finals:
        figures.append(out / "actions_after_training.png")
        plot_groups(finals, contract, figures[-1], f"Final policy's actions vs bounds ({args.conditions} grid)")
    print_table(results)
    print(f"\nfigures: {', '.join(map(str, figures))}")
    return {**headline(results, algos), "minutes": args.minutes, "timesteps": args.timesteps,
            "conditions": args.conditions, "seeds": seeds, "threshold": args.threshold, "methods": results,
            "initial": initial}  # fmt: skip


def print_table(results: dict[str, dict]) -> None:
    print("| run | tracking error (eval / curve) | return | falls | under threshold | at bound |")
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        t = r["time_under_threshold_s"]

        def f(v, fmt):
            return "-" if v is None else format(v, fmt)

        print(f"| {label} | {f(r['tracking_error'], '.3f')} / {f(r['curve_tracking_error'], '.3f')} | "
              f"{f(r['return'], '.2f')} | {f(r['falls'], '.1f')} | {'never' if t is None else f'{t / 60:.1f} min'} "
              f"({r['reached']}) | {f(r['at_bound'], '.1%')} |")  # fmt: skip


def _csv(text: str, known, what: str) -> list[str]:
    items = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in items if v not in known]
    if bad or not items:
        raise UsageError(f"unknown {what} {bad or text!r}; known: {', '.join(known)}")
    return items


def _main(argv: list[str]) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated (--list)")
    parser.add_argument("--algos", default="sac", help="comma-separated: sac, tqc")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock per run")
    parser.add_argument(
        "--timesteps", type=int, default=0,
        help="also stop each run after this many transitions: the same samples for every method when the box is"
        " shared (wall-clock budgets then favour the runs that had the CPU to themselves); 0: wall-clock only",
    )  # fmt: skip
    parser.add_argument("--seeds", default="0", help="comma-separated integers")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (one core each)")
    parser.add_argument(
        "--conditions",
        choices=tuple(time_to_walk.CONDITIONS),
        default="nominal",
        help="nominal: no randomization or observation noise (default); training: the task's",
    )
    parser.add_argument("--out", default="runs/bounds_ablation")
    parser.add_argument("--analyze", metavar="DIR", help="only report on the finished runs in DIR")
    parser.add_argument("--overwrite", action="store_true", help="retrain over run directories already there")
    parser.add_argument("--threshold", type=float, default=0.25, help="tracking error, m/s (learning curve)")
    parser.add_argument("--smooth", type=int, default=3, help="trailing mean over this many curve rows")
    parser.add_argument("--robots", type=int, default=4, help="robots per grid command in the evaluation")
    parser.add_argument("--seconds", type=float, default=12.0, help="evaluated seconds per grid command")
    parser.add_argument("--reevaluate", action="store_true", help="evaluate again runs that have an evaluation")
    parser.add_argument("--sac-std", type=float, default=1.0, help="SAC's initial std before tanh (SB3: ~1)")
    parser.add_argument("--list", action="store_true", help="print the methods and their training flags")
    args = parser.parse_args(argv)
    if args.list:
        for name, flags in METHODS.items():
            print(f"{name:16s} {' '.join(flags) or '(the preset: ppo_percentile clipped to the joint-target limits)'}")
        return 0
    methods = _csv(args.methods, METHODS, "methods")
    algos = _csv(args.algos, ("sac", "tqc"), "algos")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    problems = [f"{name} must be > 0, got {value}" for name, value in (
        ("--minutes", args.minutes), ("--jobs", args.jobs), ("--threshold", args.threshold), ("--smooth", args.smooth),
        ("--robots", args.robots), ("--sac-std", args.sac_std)) if not value > 0]  # fmt: skip
    if not seeds:
        problems.append("--seeds is empty")
    if not args.seconds > 2.0:
        problems.append(f"--seconds must be > 2 (the evaluation's settle time), got {args.seconds}")
    if problems:
        raise UsageError("; ".join(problems))
    runs = [(a, m, s) for a in algos for m in methods for s in seeds]
    codes: dict[str, int] = {}
    if args.analyze:
        args.out = args.analyze
        if not Path(args.out).is_dir():
            raise UsageError(f"--analyze {args.out}: no such directory")
    else:
        busy = [str(d) for d in (run_dir(Path(args.out), *r) for r in runs) if d.exists() and any(d.iterdir())]
        if busy and not args.overwrite:
            raise UsageError(f"run directories already there: {', '.join(busy)} (--analyze {args.out}, or --overwrite)")
        wall = math.ceil(len(runs) / args.jobs) * args.minutes
        limit = f"{args.timesteps:,} steps or {args.minutes:g} min" if args.timesteps else f"{args.minutes:g} min"
        print(f"{len(runs)} runs x {limit}, {args.jobs} at a time: at most ~{wall:.0f} min of training")
        codes = train_all(runs, args)
    result = report(algos, methods, seeds, args)
    print(json.dumps(result))
    return 1 if any(codes.values()) else 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, PROG)


if __name__ == "__main__":
    raise SystemExit(main())
