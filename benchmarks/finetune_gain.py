"""How much of the sim-to-real drop fine-tuning recovers on the emulated A1 (long: about 1 h at the defaults).

    python benchmarks/finetune_gain.py [--minutes 20] [--marks 5 10 20] [--eval-episodes 4] [--out runs/finetune_gain]

1. The reference policy's return on the emulated robot without a gap (what it was trained for) and with the
   pipeline's default dynamics gap (``finetune.pipeline.DEFAULT_GAP``): the zero-shot drop.
2. Fine-tuning from the reference bundle on the gapped robot for ``--minutes`` of emulated robot time (learner
   process + actor over CurveZMQ, as ``python -m finetune pipeline``); the policy the actor was running at each
   mark (5, 10, 20 min) is measured again (deterministic, ``--eval-episodes`` episodes).
3. The same budget from scratch on the robot (``--fresh``: new networks, no simulator data).

Returns are the contract's reward computed from the emulator's ground truth (a referee's motion capture: the
robot's own noisy measurements are what the learner gets, and are reported under ``measured``), per episode of
``--episode-steps`` control steps (a fall ends an episode early). Last line JSON: ``{"metric":
"recovered_fraction", "value": (R_mark - R_gap) / (R_nominal - R_gap) at the last mark, "baseline": R_gap (the
zero-shot return), "ratio": R_mark / R_gap, "target": 0.5, "zero_shot_retention": R_gap / R_nominal, ...}``.
``--speed`` below 1 runs the emulated robot (and so the learner's data stream) slower than real time, for a box
that cannot hold real time; budgets and marks stay in emulated minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.emulated import actor_params, run_actor  # noqa: E402
from finetune.pipeline import (  # noqa: E402
    DEFAULT_BUNDLE,
    DEFAULT_GAP,
    LENIENT_SAFETY,
    evaluate,
    free_port,
    init_keys,
    learner_flags,
    start_learner,
    stop_learner,
)


def finetune_run(args, out: Path, keys: Path, policy0: Path, fresh: bool) -> dict:
    """Fine-tune for ``args.minutes`` on the gapped robot; returns {mark: policy file in use at that mark}."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    extra = learner_flags(args, checkpoint_every_s=60) + (["--fresh"] if fresh else []) + list(args.learner_arg)
    learner = start_learner(args.bundle, out / "learner", keys, endpoint, extra, out / "learner.log")
    in_use: list[tuple[float, int]] = []

    def progress(status: dict) -> None:
        in_use.append((status["emulated_s"], status["policy_version"]))
        print(
            f"\r  {'scratch' if fresh else 'fine-tune'}: {status['emulated_s'] / 60:5.1f} min, episodes "
            f"{status['episodes']}, policy v{status['policy_version']}, last return {status['last_return']}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    start_policy = policy0
    try:
        if fresh:  # the robot starts from the fresh networks, which the learner publishes first
            start_policy = out / "learner" / "policies" / "policy_v00001.onnx"
            deadline = time.monotonic() + 120
            while not start_policy.is_file():
                if time.monotonic() > deadline or learner.poll() is not None:
                    raise RuntimeError(f"the fresh learner published no policy; see {out / 'learner.log'}")
                time.sleep(0.2)
        params = actor_params(
            learner_endpoint=endpoint,
            keys_dir=keys,
            work_dir=out / "actor",
            episode_steps=args.episode_steps,
            seed=args.seed,
        )
        record = run_actor(
            start_policy,
            seconds=args.minutes * 60,
            gap=DEFAULT_GAP,
            speed=args.speed,
            params=params,
            safety_params=LENIENT_SAFETY,
            on_progress=progress,
        )
    finally:
        stop_learner(learner)
    print(file=sys.stderr)
    marks = {}
    for mark in args.marks:
        versions = [v for t, v in in_use if t <= mark * 60]
        version = versions[-1] if versions else 0
        path = out / "actor" / "policies" / f"policy_v{version:05d}.onnx"
        marks[mark] = path if version > 0 and path.is_file() else None
    return {
        "marks": marks,
        "transitions": record["transitions"],
        "episodes": record["episodes"],
        "falls": record["falls"],
        "policy_swaps": record["policy_swaps"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=DEFAULT_BUNDLE)
    p.add_argument("--out", default="runs/finetune_gain")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--marks", type=float, nargs="+", default=[5, 10, 20])
    p.add_argument("--eval-episodes", type=int, default=4)
    p.add_argument("--episode-steps", type=int, default=500)
    p.add_argument("--utd", type=float, default=1.0)
    p.add_argument("--publish-every", type=int, default=250)
    p.add_argument("--learning-starts", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="emulated seconds per wall-clock second (0.5 on a busy box: the budgets stay in emulated time)",
    )
    p.add_argument("--skip-scratch", action="store_true", help="only fine-tune from the reference")
    p.add_argument(
        "--learner-arg",
        action="append",
        default=[],
        help="extra learner flag (repeat), e.g. --learner-arg=--learning-rate --learner-arg=1e-4",
    )
    args = p.parse_args()
    from deploy.export import export_policy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    policy0 = out / "policy_v0.onnx"
    export_policy(args.bundle, policy0, sim_envs=2, sim_steps=50, num_random_obs=256)
    keys = init_keys(out / "keys", ["a1"])
    command = (0.5, 0.0, 0.0)
    ev = lambda policy, gap, label: evaluate(
        policy, args.eval_episodes, args.episode_steps, gap, args.speed, out / "eval" / label, label, command
    )
    nominal_rec = ev(policy0, {}, "nominal")
    gapped_rec = ev(policy0, DEFAULT_GAP, "zero_shot")
    nominal, gapped = nominal_rec["mean_return"], gapped_rec["mean_return"]
    print(f"reference: nominal {nominal:.3f}, with the gap {gapped:.3f} (drop {nominal - gapped:.3f})", file=sys.stderr)
    result = {
        "nominal_return": nominal,
        "zero_shot_return": gapped,
        "measured": {"nominal": nominal_rec["mean_measured_return"], "zero_shot": gapped_rec["mean_measured_return"]},
        "gap": DEFAULT_GAP,
        "zero_shot_retention": round(gapped / nominal, 4) if nominal > 0 else None,
        "speed": args.speed,
    }
    for name, fresh in (("finetune", False), ("scratch", True)):
        if fresh and args.skip_scratch:
            continue
        run = finetune_run(args, out / name, keys, policy0, fresh)
        returns = {}
        for mark, path in run["marks"].items():
            rec = ev(path, DEFAULT_GAP, f"{name}_{mark:g}") if path else None
            returns[f"{mark:g}min"] = rec["mean_return"] if rec else None
            result["measured"][f"{name}_{mark:g}min"] = rec["mean_measured_return"] if rec else None
        result[name] = {**returns, **{k: v for k, v in run.items() if k != "marks"}}
        print(f"{name}: {returns}", file=sys.stderr)
    last = f"{args.marks[-1]:g}min"
    drop = nominal - gapped
    final = result["finetune"].get(last)
    recovered = (final - gapped) / drop if final is not None and drop > 0 else None
    result.update(
        metric="recovered_fraction",
        value=None if recovered is None else round(recovered, 4),
        baseline=round(gapped, 4),
        ratio=None if final is None else round(final / gapped, 4),
        target=0.5,
        wall_s=round(time.monotonic() - t0, 1),
    )
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    head = {k: result.pop(k) for k in ("metric", "value", "baseline", "ratio")}
    print(json.dumps({**head, **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
