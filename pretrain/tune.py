"""``python -m pretrain tune``: wall-clock hyperparameter search for SAC/TQC with Optuna (the blog's Part II).

Examples::

    python -m pretrain tune --study-name sac_cpu --n-trials 40 --trial-minutes 3           # SQLite, one box
    python -m pretrain tune --storage postgresql://tune:PASSWORD@db-host/tune --study-name sac_cpu \\
        --n-trials 100 --trial-minutes 5                          # the same command on every machine
    python -m pretrain tune --study-name sac_cpu --n-trials 0 --export-preset sac_tuned --report

Each trial trains a sampled config (``pretrain/tune_space.py``) for ``--trial-minutes`` of wall-clock in a process
of its own (``a1-pretrain --config``), then scores the final bundle with the grid evaluation
(``pretrain/evaluate_grid.py``, training conditions, a small grid): objective = max tracking error over the grid +
``--falls-penalty`` x falls per robot, minimized (``--objective return``: minus the return). The learning curve's
tracking error is reported to Optuna at every 5% of the budget, so a pruner stops bad trials early (the trainer
stops on SIGTERM and keeps its bundle).

The study lives in Optuna's RDB storage, which coordinates any number of workers: every worker runs the same
command; ``--n-trials`` is the study's total of completed and pruned trials. A worker stopped by Ctrl-C or
SIGTERM marks its running trial FAIL and exits with status 130; the trial of a killed worker (SIGKILL, power
loss) stops sending heartbeats and the next worker to start a trial marks it FAIL. Run the command again to
continue the study. Every trial keeps its run directory ``<out>/<study>/trial_<number>/`` (config.yaml,
curve.csv, checkpoints, train.log, tune_score.json) on the machine that ran it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

from a1_common.cli import ArgumentParser, UsageError, run_main
from pretrain import config as cfgmod
from pretrain import tune_space
from pretrain.tune_trial import EVAL_GRID, Interrupted, Scoring, TrialFailed, TrialRunner

WORKER = f"{socket.gethostname()}:{os.getpid()}"
MACHINE_FIELDS = ("out", "torch_threads", "env.threads", "device")
"""Config fields a worker may set for its own machine: not compared between the workers of a study."""
TUNE_DEFAULTS = {"save_replay_buffer": False, "checkpoint_minutes": 0.0, "keep_checkpoints": 1}
"""Trials keep their final bundle without the replay buffer (hundreds of MB each); ``--fix`` overrides these."""
MAX_FAILURES_IN_A_ROW = 3
"""A worker stops when this many of its trials fail in a row (a broken set-up, not an unlucky sample)."""
OFFPOLICY_PRESETS = tuple(name for name, doc in cfgmod.PRESETS.items() if doc.get("algo") in ("sac", "tqc"))


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="search space (--list-space prints it after --fix/--narrow):\n"
        + "\n".join(f"  {spec.describe()}" for spec in tune_space.SPACE),
    )
    parser.add_argument("--storage", default="sqlite:///runs/tune.db", help="Optuna RDB URL (default %(default)s)")
    parser.add_argument("--study-name", required=True, help="study to create or continue")
    parser.add_argument("--n-trials", type=int, required=True, help="completed + pruned trials the study should have")
    parser.add_argument(
        "--trial-minutes", type=float, help="wall-clock training budget per trial (needed unless 0 trials)"
    )
    parser.add_argument("--preset", choices=OFFPOLICY_PRESETS, help="base config (default: sac, or the --config's)")
    parser.add_argument("--config", help="base config YAML (any subset of a1-pretrain's fields)")
    parser.add_argument("--fix", action="append", default=[], metavar="KEY=VALUE", help="fix a config field (YAML)")
    parser.add_argument(
        "--narrow", action="append", default=[], metavar="KEY=LOW:HIGH", help="range (or A,B choices) of a parameter"
    )
    parser.add_argument("--sampler", choices=("cmaes", "tpe"), default="cmaes", help="default %(default)s")
    parser.add_argument(
        "--seed", type=int, help="sampler seed; trial k samples with (seed, k), so workers share it (default: random)"
    )
    parser.add_argument("--pruner", choices=("median", "halving", "none"), default="median", help="default %(default)s")
    parser.add_argument("--objective", choices=("tracking", "return"), default="tracking", help="default %(default)s")
    parser.add_argument("--falls-penalty", type=float, default=1.0, help="objective per fall per robot (m/s)")
    parser.add_argument("--eval-robots", type=int, default=2, help="robots per grid command (default %(default)s)")
    parser.add_argument("--eval-seconds", type=float, default=10.0, help="episode evaluated (default %(default)s s)")
    parser.add_argument("--eval-settle-s", type=float, default=2.0, help="seconds before tracking is measured")
    parser.add_argument(
        "--eval-command", type=float, nargs=3, action="append", metavar=("VX", "VY", "WZ"), help="grid point (repeat)"
    )
    parser.add_argument(
        "--out", default="runs/tune", help="trial run directories go to OUT/STUDY/ (default %(default)s)"
    )
    parser.add_argument("--heartbeat-s", type=int, default=60, help="a trial without heartbeat for 2x this is FAIL")
    parser.add_argument("--export-preset", metavar="NAME", help="write the best trial as OUT/STUDY/NAME.yaml")
    parser.add_argument("--report", action="store_true", help="write OUT/STUDY/report.md, history.png, importances.png")
    parser.add_argument("--list-space", action="store_true", help="print the search space and base config, then exit")
    parser.add_argument(
        "--check-seeds", metavar="N,N,...",
        help="train the best trial's config and the base config again on these (fresh) seeds, the study's budget"
        " and scoring, and compare (pretrain/tune_check.py; OUT/STUDY/check.json)",
    )  # fmt: skip
    parser.add_argument("--check-jobs", type=int, default=2, help="--check-seeds runs at once, one core each")
    return parser


def base_config(args: argparse.Namespace, fixed: dict[str, Any]) -> cfgmod.TrainConfig:
    """The config every trial starts from: preset < --config file < tune's defaults < --fix."""
    try:
        file_doc = cfgmod.load_yaml(args.config) if args.config else None
        config = cfgmod.resolve(file_doc, {}, args.preset)
    except ValueError as exc:
        raise UsageError(f"--config {args.config}: {exc}") from None
    if config.algo not in ("sac", "tqc"):
        raise UsageError(f"tune searches SAC/TQC hyperparameters; the base config has algo {config.algo!r}")
    try:
        return cfgmod.merge(config, cfgmod.unflatten({**TUNE_DEFAULTS, **fixed})).validate()
    except ValueError as exc:
        raise UsageError(f"--fix: {exc}") from None


def study_setup(args: argparse.Namespace, base: cfgmod.TrainConfig, space: tuple[Any, ...]) -> dict[str, Any]:
    """What every worker of a study must agree on (stored in the study, compared when a worker joins)."""
    flat = {dotted: value for dotted, value, _ in cfgmod.field_paths(base) if dotted not in MACHINE_FIELDS}
    setup = {
        "trial_minutes": args.trial_minutes,
        "scoring": dataclasses.asdict(scoring(args)),
        "space": [spec.as_dict() for spec in space],
        "base": flat,
    }
    return json.loads(json.dumps(setup))  # tuples -> lists: what the storage gives back


def scoring(args: argparse.Namespace) -> Scoring:
    grid = [tuple(c) for c in args.eval_command] if args.eval_command else list(EVAL_GRID)
    return Scoring(grid, args.eval_robots, args.eval_seconds, args.eval_settle_s, args.objective, args.falls_penalty)


def check_setup(study: Any, setup: dict[str, Any]) -> None:
    stored = study.user_attrs.get("tune_setup")
    if stored is None:
        study.set_user_attr("tune_setup", setup)
        return
    differ = [k for k in setup if k != "base" and stored.get(k) != setup[k]]
    differ += [f"base {k}" for k in setup["base"] if stored.get("base", {}).get(k) != setup["base"][k]]
    if differ:
        raise UsageError(
            f"study {study.study_name!r} was started with other settings ({', '.join(differ)}); every worker of a "
            "study runs the same command (only --seed, --out and machine fields may differ)"
        )


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.n_trials < 0:
        parser.error(f"--n-trials must be >= 0, got {args.n_trials}")
    if args.n_trials and not (args.trial_minutes or 0) > 0:
        parser.error("--trial-minutes M (> 0) is needed to run trials")
    if args.eval_robots < 1 or not args.eval_seconds > args.eval_settle_s >= 0:
        parser.error("need --eval-robots >= 1 and --eval-seconds > --eval-settle-s >= 0")
    if args.heartbeat_s < 1:
        parser.error(f"--heartbeat-s must be >= 1, got {args.heartbeat_s}")
    if args.check_seeds is not None:
        try:
            args.check_seeds = [int(v) for v in args.check_seeds.split(",")]
        except ValueError:
            parser.error(f"--check-seeds: comma-separated integers, got {args.check_seeds!r}")
    if args.check_jobs < 1:
        parser.error(f"--check-jobs must be >= 1, got {args.check_jobs}")
    if args.export_preset and not args.export_preset.replace("_", "").replace("-", "").isalnum():
        parser.error(f"--export-preset: a name of letters, digits, _ and -, got {args.export_preset!r}")


def _main(argv: list[str], prog: str | None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    fixes = tune_space.parse_assignments(args.fix, "--fix")
    narrows = tune_space.parse_assignments(args.narrow, "--narrow")
    space, fixed = tune_space.restrict(tune_space.SPACE, fixes, narrows)
    base = base_config(args, fixed)
    run_root = Path(args.out) / args.study_name
    runner = TrialRunner(base, space, run_root, args.trial_minutes or 0.0, scoring(args))
    runner.trial_config(tune_space.middle(space), 0)  # a space that does not fit the config fails here, not later
    if args.list_space:
        print("\n".join(spec.describe() for spec in space) or "(every parameter is fixed)")
        print(f"fixed: {fixed or 'nothing'}\nbase config (preset {base.preset}):\n{base.to_yaml()}", end="")
        return 0

    try:
        from pretrain import tune_study
    except ModuleNotFoundError as exc:
        raise UsageError(f"{exc.name} is not installed: pip install -e '.[tune]' (or scripts/setup.sh)") from None

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=tune_study.ExperimentalWarning)
        study = tune_study.open_study(args)
        if args.n_trials:
            check_setup(study, study_setup(args, base, space))
            _optimize(study, runner, args.n_trials)
        if args.export_preset:
            from pretrain.tune_report import export_preset

            print(f"[tune] wrote {export_preset(study, run_root / f'{args.export_preset}.yaml', args.export_preset)}")
        if args.report:
            from pretrain.tune_report import write_report

            for line in write_report(study, run_root):
                print(f"[tune] {line}")
        if args.check_seeds:
            from pretrain.tune_check import check

            print(json.dumps(check(study, run_root, args.check_seeds, args.check_jobs)))
    return 0


def _optimize(study: Any, runner: TrialRunner, n_trials: int) -> None:
    from pretrain import tune_study

    progress = tune_study.Progress(n_trials, WORKER, MAX_FAILURES_IN_A_ROW)
    if progress.full(study):
        print(f"[tune] study {study.study_name} already has {n_trials} completed, pruned or running trials")
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one interrupt; the cleanup below must not be cut short
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    print(f"[tune] worker {WORKER}: study {study.study_name}, {n_trials} trials, {runner.trial_minutes:g} min each")
    try:
        study.optimize(
            lambda trial: runner(progress.claim(trial)),
            callbacks=[progress],
            catch=(TrialFailed, tune_study.SurplusTrial),
            gc_after_trial=True,
        )
    except KeyboardInterrupt as exc:
        tune_study.fail_running_trials(study, WORKER)  # Optuna has done it, unless the interrupt came in between
        what = "no trial was running" if progress.current is None else f"trial {progress.current} marked FAIL"
        print(f"[tune] interrupted ({str(exc) or 'SIGINT'}): {what}; run the same command to continue the study")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if progress.error:
        raise RuntimeError(progress.error)
    print(f"[tune] {progress.summary(study)}")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    prog = prog or "python -m pretrain tune"
    return run_main(lambda args: _main(args, prog), argv if argv is not None else sys.argv[1:], prog)


if __name__ == "__main__":
    raise SystemExit(main())
