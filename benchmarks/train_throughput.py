"""Training throughput of ``a1-pretrain``: the sequential SB3 loop against the concurrent update, in one run.

Usage (from the repo root, package installed; the box otherwise idle: this measures what two cores give)::

    python benchmarks/train_throughput.py [--preset sac] [--seconds 90] [--repeats 2] [--quick]

Each variant is a real ``a1-pretrain --preset PRESET --env.randomize true`` training from scratch in its own
process, for ``--seconds`` of wall-clock after ``learning_starts`` (so every variant updates all the time):

* ``sequential_sb3``: SB3's loop (collect a step, then update) with SB3's update (autograd on SB3's modules,
  ``--offpolicy.fast_update false``), torch and the simulator on one thread each: what this issue started from,
  the baseline.
* ``sequential``: the same loop with the fast update (``a1_common/algos/fast_update.py``), one thread each
  (``--torch_threads 1 --env.threads 1``): the project's training default; one core idles most of the time.
* ``sequential_2threads``: the same loop with two threads for torch and for the simulator (what a user would
  try first to use both cores).
* ``concurrent``: ``--offpolicy.concurrent_update true`` with one thread each: the update runs while the
  simulator computes the next step (``a1_common/algos/concurrent.py``).

Variants alternate (``--repeats`` rounds, the order reversed every other round) so that load from other
processes spreads over all of them; the median of the rounds counts. Env steps per second come from the run's
``curve.csv`` (timesteps and time between its first and last rows); gradient steps per second follow from the
preset's replay ratio (``gradient_steps / (train_freq * num_envs)`` per env step), the same for every variant.

The last line printed is one JSON object::

    {"metric": "train_env_steps_per_s", "value": <concurrent>, "baseline": <sequential_sb3>, "ratio": ...,
     "ratio_vs_sequential": <concurrent / sequential (fast update)>, "ratio_vs_2threads": ...,
     "sequential_sb3": ..., "sequential": ..., "sequential_2threads": ..., "concurrent": ...,
     "grad_steps_per_s": {...}, "rounds": {...}, "preset": ..., "seconds": ...}
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from pretrain.config import preset

VARIANTS = {
    "sequential_sb3": ["--torch_threads", "1", "--env.threads", "1", "--offpolicy.fast_update", "false"],
    "sequential": ["--torch_threads", "1", "--env.threads", "1"],
    "sequential_2threads": ["--torch_threads", "2", "--env.threads", "2"],
    "concurrent": ["--torch_threads", "1", "--env.threads", "1", "--offpolicy.concurrent_update", "true"],
}


def env_steps_per_s(curve_csv: Path) -> float:
    """Timesteps per second between the first and the last row of a run's curve (after the first update)."""
    with curve_csv.open() as f:
        rows = [(float(r["time_s"]), float(r["timesteps"])) for r in csv.DictReader(f)]
    if len(rows) < 2 or rows[-1][0] <= rows[0][0]:
        raise RuntimeError(f"{curve_csv}: too few curve rows to measure ({len(rows)}); raise --seconds")
    return (rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0])


def run_variant(name: str, preset_name: str, seconds: float, workdir: Path, seed: int) -> float:
    config = preset(preset_name)
    starts = config.offpolicy.learning_starts
    out = workdir / f"{name}-{seed}"
    # The curve logs every 5 s; the first row comes after learning_starts (random actions, no updates before).
    cmd = [sys.executable, "-m", "pretrain.train", "--preset", preset_name, "--seed", str(seed),
           "--minutes", str((seconds + 10.0) / 60.0), "--log-every-s", "5", "--checkpoint-minutes", "1000",
           "--save-replay-buffer", "false", "--offpolicy.learning_starts", str(starts), "--out", str(out),
           "--no-progress", *VARIANTS[name]]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return env_steps_per_s(out / "curve.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--preset", default="sac", help="a1-pretrain preset (off-policy)")
    parser.add_argument("--seconds", type=float, default=90.0, help="wall-clock per variant and round")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every variant")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS)
    )
    parser.add_argument("--quick", action="store_true", help="one round of 30 s (a smoke test, noisy)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 30.0, 1
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    config = preset(args.preset)
    if config.algo == "ppo":
        parser.error("--preset must be off-policy (sac or tqc): the concurrent update is theirs")
    per_env_step = config.offpolicy.gradient_steps / (config.offpolicy.train_freq * config.env.num_envs)

    rounds: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as tmp:
        for r in range(args.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                sps = run_variant(name, args.preset, args.seconds, Path(tmp), seed=r)
                rounds[name].append(sps)
                print(f"round {r}: {name:20s} {sps:8.0f} env steps/s  {sps * per_env_step:6.1f} grad steps/s",
                      flush=True)  # fmt: skip
    median = {n: statistics.median(v) for n, v in rounds.items()}
    value, base = median.get("concurrent"), median.get("sequential_sb3")
    fast, two = median.get("sequential"), median.get("sequential_2threads")
    result = {
        "metric": "train_env_steps_per_s",
        "value": value,
        "baseline": base,
        "ratio": value / base if value and base else None,
        "ratio_vs_sequential": value / fast if value and fast else None,
        "ratio_vs_2threads": value / two if value and two else None,
        **{n: round(v, 1) for n, v in median.items()},
        "grad_steps_per_s": {n: round(v * per_env_step, 1) for n, v in median.items()},
        "rounds": {n: [round(x, 1) for x in v] for n, v in rounds.items()},
        "preset": args.preset,
        "seconds": args.seconds,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
