"""Evaluate a policy on a grid of velocity commands, nominal and under training conditions.

``python -m pretrain evaluate BUNDLE`` runs every command of the grid (default: forward and backward
``vx`` in {-1, -0.5, 0.5, 1} m/s, sideways ``vy`` in {-0.5, 0.5} m/s, turning ``wz`` in {-1, 1} rad/s,
one non-zero component at a time, plus 0.25 m/s forward and standing still) on several robots each, all
in one vector env, for one 20 s episode, under two conditions:

* ``nominal``: nominal dynamics, robots reset at the default pose, no observation noise;
* ``training``: the contract's domain randomization (mass, COM, friction, reset spread, pushes) and
  the training observation noise, i.e. what the policy was trained for.
* ``latency`` (``--conditions all`` or ``latency``): training conditions with every joint target acting one
  policy step (20 ms) late, as on a loaded robot computer.

Per command and condition: the mean linear tracking error ``|cmd_xy - v_xy|`` (m/s, body frame) and
yaw-rate error ``|cmd_wz - w_z|`` (rad/s), both averaged after ``--settle-s`` (the robots start from a
drop at rest); the mean velocity along the command in the world frame (displacement over the measured
window projected on the commanded direction at its start; for a turn, the world yaw rate); falls
(trunk contact; a robot that falls is reset and keeps its command); and the return summed over the 20 s
episode (Isaac Lab's scale: about 15 "almost solved", about 30 for its PPO on this task).

Writes ``evaluation.json`` and ``evaluation.png`` (commanded vs achieved per grid point) to ``--out``
(default: ``<bundle>/evaluation``), optionally a video (``--video``) of one robot following a command
sequence. The last line printed is JSON (``grid_tracking_error_max`` etc.); the exit code is 0 when the
grid goals are met under every evaluated condition, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from a1_common.cli import ArgumentParser, run_main
from pretrain.evaluate_grid import CONDITIONS, DEFAULT_CONDITIONS, DEFAULT_GRID, Goals, evaluate_condition
from pretrain.evaluate_report import plot_grid, print_table, record_video


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pretrain.rollout import BundlePolicy

    policy = BundlePolicy(args.bundle)
    grid = DEFAULT_GRID if not args.command else [tuple(c) for c in args.command]
    conditions = {"both": list(DEFAULT_CONDITIONS), "all": list(CONDITIONS)}.get(args.conditions, [args.conditions])
    results = []
    for condition in conditions:
        res = evaluate_condition(
            policy,
            policy.contract,
            list(grid),
            condition=condition,
            robots_per_command=args.robots,
            seconds=args.seconds,
            settle_s=args.settle_s,
            seed=args.seed,
        )
        results.append(res)
        if not args.json:
            print_table(res)
    out = Path(args.out) if args.out else Path(args.bundle) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "bundle": str(args.bundle),
        "contract": policy.contract.name,
        "goals": asdict(Goals()),
        "conditions": {r.condition: {**r.summary, "points": [asdict(p) for p in r.points]} for r in results},
    }
    (out / "evaluation.json").write_text(json.dumps(doc, indent=1))
    plot_grid(results, out / "evaluation.png")
    if args.video:
        doc["video"] = str(record_video(policy, policy.contract, out, seed=args.seed))
    # Headline: the strictest condition evaluated (training conditions when present).
    head = results[-1]
    s = head.summary
    doc["headline"] = {
        "metric": "grid_tracking_error_max",
        "value": round(s["grid_tracking_error_max"], 4),
        "yaw_error_max": round(s["yaw_error_max"], 4),
        "falls": s["falls"],
        "return_20s": round(s["return_20s"], 2),
        "forward_0_5_speed": None if s["forward_0_5_speed"] is None else round(s["forward_0_5_speed"], 4),
        "meets_goals": all(r.summary["meets_goals"] for r in results),
        "conditions": head.condition,
        **{f"{r.condition}_error_max": round(r.summary["grid_tracking_error_max"], 4) for r in results},
    }
    if not args.json:
        video = f", {doc['video']}" if args.video else ""
        print(f"wrote {out / 'evaluation.json'} and {out / 'evaluation.png'}{video}")
    return doc


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        description="Evaluate a policy on a grid of velocity commands (nominal and training conditions).",
        allow_abbrev=False,
    )
    parser.add_argument("bundle", help="bundle or run directory")
    parser.add_argument(
        "--conditions",
        choices=("both", "all", *CONDITIONS),
        default="both",
        help="both: nominal and training (default); all: also latency (training conditions, joint targets one "
        "policy step late)",
    )
    parser.add_argument("--robots", type=int, default=4, help="robots per command (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, help="episode length evaluated (default 20 s)")
    parser.add_argument("--settle-s", type=float, default=2.0, help="seconds before tracking is measured")
    parser.add_argument(
        "--command",
        type=float,
        nargs=3,
        action="append",
        metavar=("VX", "VY", "WZ"),
        help="a grid point (repeat for several; default: the walking-goal grid)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output directory (default: BUNDLE/evaluation)")
    parser.add_argument("--video", action="store_true", help="also render a video of a command sequence")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    return parser


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.robots < 1:
        parser.error(f"--robots must be >= 1, got {args.robots}")
    if not args.seconds > args.settle_s >= 0:
        parser.error(f"need --seconds > --settle-s >= 0, got {args.seconds} and {args.settle_s}")
    doc = run(args)
    print(json.dumps(doc["headline"]))
    return 0 if doc["headline"]["meets_goals"] else 1


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain evaluate")


if __name__ == "__main__":
    raise SystemExit(main())
