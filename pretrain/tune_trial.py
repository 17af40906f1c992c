"""One trial of ``python -m pretrain tune``: train a sampled config for a wall-clock budget, report its learning
curve to Optuna while it trains, score the final bundle on a small evaluation grid.

The trial runs in its own process (:func:`trainer_main`: ``a1-pretrain --config`` with the trial's resolved config,
then the score of its bundle, written to ``tune_score.json``), so the worker stays light and responsive
(heartbeats, signals, pruning) and every trial starts afresh. Pruning and interrupts send that process SIGTERM,
on which the trainer stops between steps and writes its final bundle (and the trial is not scored).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a1_common.cli import UsageError
from pretrain import config as cfgmod
from pretrain import tune_space

EVAL_GRID: tuple[tuple[float, float, float], ...] = (
    (0.5, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (-0.5, 0.0, 0.0),
    (0.0, 0.5, 0.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.0, 0.0),
)
"""A cheap subset of the walking-goal grid (``pretrain/evaluate_grid.py``): forward, fast, back, sideways, turn,
stand."""
REPORT_STEPS = 20
"""Intermediate values per trial: the curve at every 5% of the budget (Optuna step = percent of the budget)."""
STOP_GRACE_S = 120.0
"""How long a trainer may take to write its final bundle after SIGTERM before it is killed."""

# The trial's process. It runs in a session of its own, so that its one stop signal is the worker's SIGTERM (not
# also the terminal's Ctrl-C), and it stops when its worker dies: PR_SET_PDEATHSIG (Linux) sends SIGUSR1, turned
# into one SIGTERM here. The kernel repeats the death signal as the child is re-parented from one exiting thread of
# the worker to the next; a second SIGTERM after training would kill the trainer while it writes its bundle.
_TRIAL_PROCESS = """import ctypes, os, signal, sys
def parent_died(signum, frame):
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    os.kill(os.getpid(), signal.SIGTERM)
try:
    signal.signal(signal.SIGUSR1, parent_died)
    ctypes.CDLL(None).prctl(1, signal.SIGUSR1)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(143)
from pretrain.tune_trial import trainer_main
sys.exit(trainer_main(sys.argv[2:]))
"""


class Interrupted(KeyboardInterrupt):
    """SIGTERM reached the worker: like Ctrl-C, the running trial ends FAIL and the worker stops."""


class TrialFailed(Exception):
    """The trial's training or scoring failed; the worker goes on with the next trial."""


@dataclass
class Scoring:
    """How a trial's final bundle is scored: ``evaluate_condition`` under training conditions, then the objective."""

    grid: list[tuple[float, float, float]]
    robots: int
    """Robots per grid command."""
    seconds: float
    settle_s: float
    objective: str = "tracking"
    """tracking: max tracking error over the grid + falls_penalty x falls per robot; return: minus the return."""
    falls_penalty: float = 1.0


def score_bundle(bundle: str | Path, config: cfgmod.TrainConfig, scoring: Scoring) -> dict[str, Any]:
    """Evaluate a bundle as :class:`Scoring` says; the objective and what it is made of."""
    import numpy as np
    import torch

    from pretrain.evaluate_grid import evaluate_condition
    from pretrain.rollout import BundlePolicy

    torch.set_num_threads(max(1, config.torch_threads))
    policy = BundlePolicy(bundle)
    result = evaluate_condition(
        policy,
        policy.contract,
        [tuple(c) for c in scoring.grid],
        condition="training",
        robots_per_command=scoring.robots,
        seconds=scoring.seconds,
        settle_s=scoring.settle_s,
        seed=config.seed,
    )
    s = result.summary
    falls_per_robot = s["falls"] / (len(scoring.grid) * scoring.robots)
    tracking = s["grid_tracking_error_max"] + scoring.falls_penalty * falls_per_robot
    return {
        "objective": tracking if scoring.objective == "tracking" else -s["return_20s"],
        "tracking_error_max": s["grid_tracking_error_max"],
        "tracking_error_mean": float(np.mean([p.lin_error for p in result.points])),
        "yaw_error_max": s["yaw_error_max"],
        "falls": s["falls"],
        "falls_per_robot": falls_per_robot,
        "return_20s": s["return_20s"],
        "bundle": str(bundle),
    }


def trainer_main(argv: list[str]) -> int:
    """The trial's process: ``a1-pretrain --config CONFIG``, then, unless a signal stopped the training (pruned,
    interrupted), the score of the final bundle in ``<run dir>/tune_score.json``. ``argv``: CONFIG SCORING_JSON."""
    from a1_common.cli import run_main
    from pretrain.train import main as train_main

    config_path, scoring = argv[0], Scoring(**json.loads(argv[1]))
    status = train_main(["--config", config_path, "--no-progress"])
    if status:
        return status

    def score(_: list[str]) -> int:
        config = cfgmod.from_dict(cfgmod.load_yaml(config_path))
        run_dir = Path(config.out)
        summary = json.loads((run_dir / "summary.json").read_text())
        if not str(summary["stop_reason"]).startswith("signal"):
            doc = {**score_bundle(summary["final_bundle"], config, scoring), "num_timesteps": summary["num_timesteps"]}
            (run_dir / "tune_score.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(f"score: {json.dumps(doc)}")
        return 0

    return run_main(score, [], "tune trial")


class CurveReporter:
    """Reads ``curve.csv`` while the trainer writes it and reports the curve at every ``100 / REPORT_STEPS`` % of
    the budget: tracking error (or minus the return). Returns from :meth:`update` whether to prune."""

    def __init__(self, trial: Any, path: Path, budget_s: float, objective: str) -> None:
        self.trial, self.path, self.budget_s = trial, path, budget_s
        self.column, self.sign = ("tracking_error", 1.0) if objective == "tracking" else ("ep_return", -1.0)
        self.rows_seen = 0
        self.next_step = 100 // REPORT_STEPS
        self.last_step = 0

    def update(self) -> bool:
        reported = False
        rows = complete_rows(self.path)
        for row in rows[self.rows_seen :]:
            value = row.get(self.column, math.nan)
            percent = row.get("time_s", 0.0) / self.budget_s * 100.0
            while math.isfinite(value) and self.next_step <= min(percent + 1e-6, 100):
                self.trial.report(self.sign * value, self.next_step)
                self.last_step, self.next_step = self.next_step, self.next_step + 100 // REPORT_STEPS
                reported = True
        self.rows_seen = len(rows)
        return reported and self.trial.should_prune()


def complete_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a curve.csv being written (a last line without its newline is left for the next read)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    rows = []
    for row in csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])):
        try:
            rows.append({k: float(v) if v not in ("", None) else math.nan for k, v in row.items()})
        except ValueError:
            continue
    return rows


def with_trial_budget(config: cfgmod.TrainConfig, minutes: float, out: Path, **changes: Any) -> cfgmod.TrainConfig:
    """``config`` trained as a trial is: ``minutes`` of wall-clock (no step limit) into ``out``, ``REPORT_STEPS``
    curve rows over the budget (what pruning and scoring read); ``changes`` on top (``seed``...)."""
    log_every_s = max(minutes, 1e-3) * 60.0 / REPORT_STEPS
    budget = {"minutes": minutes, "timesteps": 0, "out": str(out), "log_every_s": log_every_s}
    return dataclasses.replace(config, **budget, **changes).validate()


class TrialRunner:
    """The Optuna objective: sample, then train and score in a child process. ``trial_minutes`` of training each."""

    def __init__(
        self,
        base: cfgmod.TrainConfig,
        space: tuple[tune_space.ParamSpec, ...],
        run_root: Path,
        trial_minutes: float,
        scoring: Scoring,
    ) -> None:
        self.base, self.space, self.run_root = base, space, run_root
        self.trial_minutes, self.scoring = trial_minutes, scoring

    def trial_config(self, values: dict[str, Any], number: int) -> cfgmod.TrainConfig:
        config = cfgmod.merge(self.base, cfgmod.unflatten(values))
        return with_trial_budget(config, self.trial_minutes, self.run_root / f"trial_{number}")

    def __call__(self, trial: Any) -> float:
        from pretrain.tune_study import WORKER_ATTR

        config = self.trial_config(tune_space.suggest(trial, self.space), trial.number)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("run_dir", config.out)
        shown = ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in _searched(config, self.space).items())
        print(f"[tune] trial {trial.number} started by {trial.user_attrs[WORKER_ATTR]}: {shown}", flush=True)
        try:
            score = self.run(trial, config)
        except KeyboardInterrupt as exc:
            _try(trial.set_user_attr, "fail_reason", f"interrupted ({str(exc) or 'SIGINT'})")
            raise
        except TrialFailed as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        trial.set_user_attr("score", score)
        return score["objective"]

    def run(self, trial: Any, config: cfgmod.TrainConfig) -> dict[str, Any]:
        """Train and score in a child process; report the curve meanwhile; SIGTERM the child when pruned."""
        import optuna

        run_dir, staging = Path(config.out), self.run_root / ".staging"
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise UsageError(f"{run_dir} holds another study's trial; remove it or use another --out/--study-name")
        staging.mkdir(parents=True, exist_ok=True)
        config_path, log_path = staging / f"{run_dir.name}.yaml", staging / f"{run_dir.name}.log"
        config_path.write_text(config.to_yaml())
        budget_s = config.minutes * 60.0
        reporter = CurveReporter(trial, run_dir / "curve.csv", budget_s, self.scoring.objective)
        scoring = json.dumps(dataclasses.asdict(self.scoring))
        cmd = [sys.executable, "-c", _TRIAL_PROCESS, str(os.getpid()), str(config_path), scoring]
        pruned = False
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        try:
            t0 = time.monotonic()
            while proc.poll() is None:
                time.sleep(min(1.0, budget_s / 40))
                if not pruned and reporter.update():
                    pruned = True
                    proc.send_signal(signal.SIGTERM)
                if time.monotonic() - t0 > 2 * budget_s + 600:  # a hung trainer must not hold the worker forever
                    raise TrialFailed(f"training ran {time.monotonic() - t0:.0f} s for a {budget_s:.0f} s budget")
        finally:
            _stop(proc)
            config_path.unlink(missing_ok=True)
            if run_dir.is_dir():
                log_path = Path(shutil.move(log_path, run_dir / "train.log"))
        if pruned:
            raise optuna.TrialPruned(f"at {reporter.last_step}% of the budget")
        if proc.returncode != 0:
            raise TrialFailed(f"exited with status {proc.returncode}: {_last_line(log_path)} ({log_path})")
        reporter.update()
        try:
            score = json.loads((run_dir / "tune_score.json").read_text())
        except (OSError, ValueError):
            raise TrialFailed(f"no score written: {_last_line(log_path)} ({log_path})") from None
        if not math.isfinite(score["objective"]):
            raise TrialFailed(f"the evaluation gave a non-finite objective ({score})")
        return score


def _searched(config: cfgmod.TrainConfig, space: tuple[tune_space.ParamSpec, ...]) -> dict[str, Any]:
    flat = {dotted: value for dotted, value, _ in cfgmod.field_paths(config)}
    return {spec.key: flat[spec.key] for spec in space}


def _short(value: Any) -> str:
    if isinstance(value, str) and value.startswith("auto_"):
        return f"auto_{float(value[5:]):.4g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace(" ", "")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the trainer the way Ctrl-C would (final bundle written), killing it if it takes too long."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


def _try(func: Any, *args: Any) -> None:
    try:  # the storage call itself may be what the interrupt cut short
        func(*args)
    except Exception:  # noqa: BLE001 (best effort while stopping)
        pass
