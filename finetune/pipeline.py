"""The whole pipeline in one command: bundle -> ONNX -> emulated A1 with a dynamics gap over ROS 2 -> zero-shot
return -> fine-tuning with the learner -> return after -> report.

    python -m finetune pipeline                                    # the reference policy, default gap, 3 min
    python -m finetune pipeline --bundle runs/sac-.../checkpoints/latest --minutes 10 --out runs/pipeline
    bash scripts/pipeline.sh                                       # the same, creating .venv first

Steps (each prints a line; long ones show a progress bar, with the ROS 2 nodes' log lines above it):

1. export the bundle's policy to ONNX (:func:`deploy.export.export_policy`, parity-checked);
2. create CurveZMQ keys for the learner and one actor (``keys/``, ``keys/authorized/``);
3. zero-shot: the emulated A1 (``DEFAULT_GAP`` unless ``--gap``) runs the exported policy deterministically
   through the ROS 2 graph (emulator node + policy node + safety) for ``--eval-episodes`` episodes; the return is
   the contract's reward (:mod:`finetune.reward`) computed from the emulator's ground truth, as a referee with a
   motion capture would score it (the robot's own score, from its noisy sensors, is kept as the measured return:
   the sensor noise alone lowers it, whatever the policy does);
4. fine-tuning: the learner (``python -m finetune learner``, its own process, as on a workstation) loads the
   bundle; the actor explores on the emulated robot for ``--minutes`` of emulated time, streaming transitions over
   CurveZMQ and swapping in each policy the learner publishes; falls reset the emulator and start a new episode;
5. the final policy is measured like the zero-shot one;
6. ``report.md``, ``report.png`` (returns before/after, returns during fine-tuning, reward terms, transitions and
   policy updates; :mod:`finetune.report`), ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from a1_common.cli import ArgumentParser, run_main
from finetune.console import progress
from finetune.report import write_report

DEFAULT_BUNDLE = "pretrain/reference_policy"
DEFAULT_GAP: dict[str, float] = {
    "mass_scale": 1.15,
    "friction": 0.6,
    "motor_strength": 0.85,
    "action_latency_s": 0.01,
    "sensor_noise": 1.0,
}
"""The emulated robot differs from the training simulator: a heavier trunk (+15%), weaker motors (-15%), less
foot friction, 10 ms of actuation latency and the training sensor noise."""
LENIENT_SAFETY = {"watchdog_timeout_s": 0.3}
"""Pipelines on a loaded laptop: state may arrive late when the learner takes the CPU."""


def init_keys(directory: Path, actors: list[str]) -> Path:
    """``learner.key(_secret)``, ``<actor>.key(_secret)`` and ``authorized/<actor>.key`` (what the learner accepts)."""
    from finetune.keys import generate

    directory = Path(directory)
    if not (directory / "learner.key_secret").exists():
        generate(directory, "learner")
    authorized = directory / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    for actor in actors:
        if not (directory / f"{actor}.key_secret").exists():
            generate(directory, actor)
        shutil.copyfile(directory / f"{actor}.key", authorized / f"{actor}.key")
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_learner(
    bundle: str | Path, out: Path, keys: Path, endpoint: str, extra: list[str] | None = None, log: Path | None = None
) -> subprocess.Popen:
    """The learner as its own process (``python -m finetune learner``), logging to ``log``."""
    cmd = [
        sys.executable,
        "-m",
        "finetune",
        "learner",
        "--bundle",
        str(bundle),
        "--out",
        str(out),
        "--keys",
        str(keys),
        "--endpoint",
        endpoint,
        "--no-progress",
        *(extra or []),
    ]
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    stream = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
    return subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def learner_flags(args: argparse.Namespace, checkpoint_every_s: float) -> list[str]:
    """The learner flags the pipeline and the benchmarks expose (``args.utd``, ``publish_every``,
    ``learning_starts``)."""
    return [
        "--utd", str(args.utd), "--publish-every", str(args.publish_every),
        "--learning-starts", str(args.learning_starts), "--checkpoint-every-s", f"{checkpoint_every_s:g}",
    ]  # fmt: skip


def stop_learner(process: subprocess.Popen, timeout_s: float = 60.0) -> int:
    """SIGINT (final checkpoint), then wait; SIGKILL if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def evaluate(
    policy: Path,
    episodes: int,
    episode_steps: int,
    gap: dict,
    speed: float,
    work: Path,
    label: str,
    command: tuple[float, float, float],
) -> dict[str, Any]:
    """Deterministic returns of ``policy`` on the emulated robot (no learner), complete episodes only.

    ``returns`` / ``mean_return``: scored from the emulator's ground truth (an episode a step of which had none is
    left out and counted in ``episodes_without_ground_truth``); ``measured_returns`` / ``mean_measured_return``:
    as the robot scores itself from its sensors (the reward the learner gets)."""
    from finetune.emulated import actor_params, run_actor

    params = actor_params(work_dir=work, explore=False, episode_steps=episode_steps, score_ground_truth=True)
    with progress(f"{label}: {episodes} episodes", episodes, "episodes") as bar:
        record = run_actor(
            policy,
            episodes=episodes,
            command=command,
            gap=gap,
            speed=speed,
            params=params,
            safety_params=LENIENT_SAFETY,
            on_progress=lambda s: bar(s["episodes"]),
        )
    # complete episodes only: the one cut by the end of the run is not a return
    complete = [e for e in record["episode_log"] if e["end"] in ("timeout", "fall")]
    returns = [e["true_ret"] for e in complete if e["true_ret"] is not None]
    measured = [e["ret"] for e in complete]
    record["returns"] = returns
    record["mean_return"] = float(np.mean(returns)) if returns else float("nan")
    record["measured_returns"] = measured
    record["mean_measured_return"] = float(np.mean(measured)) if measured else float("nan")
    record["episodes_without_ground_truth"] = len(complete) - len(returns)
    return record


def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from deploy.export import export_policy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gap = json.loads(args.gap) if args.gap else dict(DEFAULT_GAP)
    command = tuple(args.command)
    t_start = time.monotonic()
    step = _stepper()

    step(f"exporting {args.bundle} to ONNX")
    policy0 = out / "policy_v0.onnx"
    export_policy(args.bundle, policy0, sim_envs=2, sim_steps=50, num_random_obs=256)
    step("creating CurveZMQ keys")
    keys = init_keys(out / "keys", ["a1"])

    step(f"zero-shot return on the emulated A1 (gap {gap})")
    before = evaluate(
        policy0, args.eval_episodes, args.episode_steps, gap, args.speed, out / "eval_before", "zero-shot", command
    )
    step(
        f"  zero-shot mean ground-truth return {before['mean_return']:.3f} over {len(before['returns'])} episodes "
        f"(measured by the robot: {before['mean_measured_return']:.3f}), {before['falls']} falls"
    )

    step(f"fine-tuning for {args.minutes} min of emulated robot time")
    endpoint = f"tcp://127.0.0.1:{args.port or free_port()}"
    learner_out = out / "learner"
    extra = learner_flags(args, checkpoint_every_s=30)
    learner = start_learner(args.bundle, learner_out, keys, endpoint, extra, out / "learner.log")
    from finetune.emulated import actor_params, run_actor

    total = args.minutes * 60.0
    try:
        params = actor_params(
            learner_endpoint=endpoint,
            keys_dir=keys,
            work_dir=out / "actor",
            episode_steps=args.episode_steps,
            command_mode=args.command_mode,
        )
        with progress("fine-tuning", int(total), "emulated s") as bar:
            during = run_actor(
                policy0,
                seconds=total,
                command=command,
                gap=gap,
                speed=args.speed,
                params=params,
                safety_params=LENIENT_SAFETY,
                on_progress=lambda s: bar(int(s["emulated_s"]), s),
            )
    finally:
        code = stop_learner(learner)
    learner_summary = _read_json(learner_out / "learner_summary.json")
    step(
        f"  learner stopped (exit {code}): {learner_summary.get('updates', '?')} updates, "
        f"policy version {learner_summary.get('policy_version', '?')}"
    )

    policies = sorted((learner_out / "policies").glob("policy_v*.onnx"))
    final = policies[-1] if policies else policy0
    step(f"return of the fine-tuned policy ({final.name})")
    after = evaluate(
        final, args.eval_episodes, args.episode_steps, gap, args.speed, out / "eval_after", "fine-tuned", command
    )
    summary = {
        "bundle": str(args.bundle),
        "gap": gap,
        "command": list(command),
        "minutes": args.minutes,
        "zero_shot_return": before["mean_return"],
        "finetuned_return": after["mean_return"],
        "zero_shot_returns": before["returns"],
        "finetuned_returns": after["returns"],
        "zero_shot_measured_return": before["mean_measured_return"],
        "finetuned_measured_return": after["mean_measured_return"],
        "episodes_without_ground_truth": before["episodes_without_ground_truth"]
        + after["episodes_without_ground_truth"],
        "zero_shot_falls": before["falls"],
        "finetuned_falls": after["falls"],
        "final_policy": str(final),
        "transitions_sent": during["transitions"],
        "episodes_during": during["episodes"],
        "falls_during": during["falls"],
        "policy_swaps": during["policy_swaps"],
        "learner": learner_summary,
        "transport": during["transport"],
        "safety_counters_during": during["safety_counters"],
        "unmeasured_reward_terms": during["unmeasured_reward_terms"],
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "episodes.json").write_text(
        json.dumps(
            {"before": before["episode_log"], "during": during["episode_log"], "after": after["episode_log"]}, indent=1
        )
        + "\n"
    )
    write_report(out, summary, before, during, after, learner_out / "learner.csv")
    step(
        f"ground-truth return {before['mean_return']:.3f} -> {after['mean_return']:.3f} (measured "
        f"{before['mean_measured_return']:.3f} -> {after['mean_measured_return']:.3f}); report: {out / 'report.md'}"
    )
    return summary


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _stepper():
    t0 = time.monotonic()

    def step(text: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f} s] {text}", flush=True)

    return step


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="a1-pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=DEFAULT_BUNDLE, help="pretraining bundle (default: the reference policy)")
    p.add_argument("--out", default="runs/pipeline", help="output directory")
    p.add_argument("--minutes", type=float, default=3.0, help="fine-tuning budget, minutes of emulated robot time")
    p.add_argument("--eval-episodes", type=int, default=3, help="episodes measured before and after")
    p.add_argument("--episode-steps", type=int, default=500, help="control steps per episode (50 Hz)")
    p.add_argument("--command", type=float, nargs=3, default=(0.5, 0.0, 0.0), metavar=("VX", "VY", "WZ"))
    p.add_argument("--command-mode", choices=("fixed", "sample"), default="fixed")
    p.add_argument("--gap", help=f"dynamics gap as JSON (default {json.dumps(DEFAULT_GAP)}); '{{}}' for none")
    p.add_argument("--speed", type=float, default=1.0, help="emulated seconds per wall-clock second")
    p.add_argument("--utd", type=float, default=1.0, help="learner gradient steps per transition")
    p.add_argument("--publish-every", type=int, default=250, help="gradient steps between policy updates")
    p.add_argument("--learning-starts", type=int, default=250, help="transitions before the first update")
    p.add_argument("--port", type=int, default=0, help="learner port on 127.0.0.1 (0: a free one)")
    return p


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = [f"--{k.replace('_', '-')} {v}" for k, v in (("minutes", args.minutes), ("speed", args.speed),
           ("eval_episodes", args.eval_episodes), ("episode_steps", args.episode_steps), ("utd", args.utd),
           ("publish_every", args.publish_every)) if not v > 0]  # fmt: skip
    if bad:
        parser.error(f"these must be > 0: {', '.join(bad)}")
    if args.learning_starts < 0 or not 0 <= args.port < 65536:
        parser.error(f"need --learning-starts >= 0 and --port in [0, 65535], got {args.learning_starts}, {args.port}")
    summary = run_pipeline(args)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("zero_shot_return", "finetuned_return", "transitions_sent", "policy_swaps", "wall_s")
            }
        ),
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "a1-pipeline")


if __name__ == "__main__":
    raise SystemExit(main())
