"""The Optuna side of ``python -m pretrain tune``: storage, sampler, pruner, and the study's trial budget.

Workers coordinate only through Optuna's RDB storage. ``--n-trials`` is the study's total: a worker starts a
trial while fewer than N trials are completed, pruned or running, and the trial numbers the storage hands out
(serialized under a lock on the study row) settle the race of two workers starting the N-th trial at the same
moment: the later one ends FAIL at once, marked ``surplus``, before anything is sampled or trained.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from a1_common.cli import UsageError

__all__ = ["ExperimentalWarning", "Progress", "SurplusTrial", "fail_running_trials", "open_study"]

WORKER_ATTR = "worker"
ACTIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
"""Trial states that count towards ``--n-trials`` (FAIL does not: a failed trial's slot is run again)."""


class SurplusTrial(Exception):
    """The study already had ``--n-trials`` trials when this one was created by a racing worker."""


def open_storage(url: str, heartbeat_s: int) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url`` with heartbeats: a trial whose worker died is failed after 2 heartbeats."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"--storage {url!r} is not a database URL (sqlite:///runs/tune.db, postgresql://user:password@host/db)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # several local workers wait for the file lock
    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                heartbeat_stale_trial_callback=_on_stale,
            )
        except ImportError:
            raise UsageError(f"--storage {shown}: no database driver installed for {parsed.drivername}") from None
        except (DBAPIError, optuna.exceptions.StorageInternalError) as exc:
            # A server not up yet, or workers creating the same new schema at once: try again.
            if attempt == 3:
                raise UsageError(f"--storage {shown}: {_first_line(exc)}") from None
            time.sleep(0.5 + random.random())
        except Exception as exc:  # noqa: BLE001 (an unknown dialect or a bad path: one line for the user)
            raise UsageError(f"--storage {shown}: {_first_line(exc)}") from None
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    worker = trial.user_attrs.get(WORKER_ATTR, "an unknown worker")
    print(f"[tune] trial {trial.number} of {worker} stopped sending heartbeats: marked FAIL", flush=True)


class TrialSeeded(optuna.samplers.BaseSampler):
    """A fresh sampler for every trial, seeded with (``--seed``, trial number): a search replays from its seed, and
    workers that run the same command (the same ``--seed``) still sample different points, since the storage gives
    each trial its own number. The samplers keep their state in the storage (CMA-ES's generation, TPE's history)."""

    def __init__(self, make: Any, seed: int | None) -> None:
        self._make, self._seed = make, seed
        self._inner: optuna.samplers.BaseSampler = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seed = None if self._seed is None else (self._seed * 1_000_003 + trial.number) % 2**31
        self._inner = self._make(seed)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, name: str, distribution: Any) -> Any:
        return self._inner.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":  # constant_liar: parallel workers do not all sample next to the same running trial
        return TrialSeeded(lambda s: optuna.samplers.TPESampler(seed=s, multivariate=True, constant_liar=True), seed)

    def cmaes(s: int | None) -> optuna.samplers.BaseSampler:
        # Categorical parameters (network size, bounds method) fall back to the independent sampler.
        independent = optuna.samplers.RandomSampler(seed=s)
        return optuna.samplers.CmaEsSampler(
            seed=s, independent_sampler=independent, warn_independent_sampling=False, with_margin=True
        )

    return TrialSeeded(cmaes, seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """Steps are percent of the trial budget (5, 10, ..., 100)."""
    if name == "median":  # the first 30% of a learning curve says little: compared from step 30 on
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=10, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(args: argparse.Namespace) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the worker prints its own line per trial
    storage = open_storage(args.storage, args.heartbeat_s)
    if not args.n_trials:
        try:
            return optuna.load_study(study_name=args.study_name, storage=storage)
        except KeyError:
            raise UsageError(f"no study {args.study_name!r} in --storage {args.storage}") from None
    for attempt in range(4):
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=args.study_name,
                sampler=make_sampler(args.sampler, args.seed),
                pruner=make_pruner(args.pruner),
                direction="minimize",
                load_if_exists=True,
            )
            break
        except optuna.exceptions.StorageInternalError:
            if attempt == 3:
                raise
            time.sleep(0.5 + random.random())
    optuna.storages.fail_stale_trials(study)
    return study


def fail_running_trials(study: optuna.Study, worker: str) -> list[int]:
    """Mark this worker's trials still RUNNING as FAIL (an interrupt can land between Optuna's steps)."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(WORKER_ATTR) == worker:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


class Progress:
    """Claims trials against the study's budget and prints a line per finished trial (an Optuna callback)."""

    def __init__(self, n_trials: int, worker: str, max_failures_in_a_row: int) -> None:
        self.n_trials, self.worker, self.max_failures = n_trials, worker, max_failures_in_a_row
        self.failures_in_a_row = 0
        self.error = ""
        self.t_start: dict[int, float] = {}
        self.current: int | None = None
        """The trial this worker is running."""

    def count(self, study: optuna.Study, before: int | None = None) -> int:
        trials = study.get_trials(deepcopy=False, states=ACTIVE)
        return sum(1 for t in trials if before is None or t.number < before)

    def full(self, study: optuna.Study) -> bool:
        return self.count(study) >= self.n_trials

    def claim(self, trial: optuna.Trial) -> optuna.Trial:
        """``trial`` if the study still needs it; a trial created after the budget was reached is surplus."""
        trial.set_user_attr(WORKER_ATTR, self.worker)
        if self.count(trial.study, before=trial.number) >= self.n_trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"the study already has {self.n_trials} trials")
        self.t_start[trial.number] = time.monotonic()
        self.current = trial.number
        return trial

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.current = None
        if trial.user_attrs.get("surplus"):
            print(f"[tune] trial {trial.number} not run: the study reached {self.n_trials} trials", flush=True)
            return
        took = time.monotonic() - self.t_start.pop(trial.number, time.monotonic())
        if trial.state == TrialState.COMPLETE:
            s = trial.user_attrs.get("score", {})
            what = (
                f"{trial.value:.4f} (tracking max {s.get('tracking_error_max', float('nan')):.3f} m/s, "
                f"falls {s.get('falls')}, return {s.get('return_20s', float('nan')):.2f})"
            )
        elif trial.state == TrialState.PRUNED:
            step = trial.last_step
            value = trial.intermediate_values.get(step) if step is not None else None
            what = f"at {step}% of the budget (curve {value:.4g})" if value is not None else ""
        else:
            what = trial.user_attrs.get("fail_reason", "")
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        print(
            f"[tune] trial {trial.number} {trial.state.name} {what} in {took:.0f} s | {_best(study)} | "
            f"{done}/{self.n_trials} done",
            flush=True,
        )
        if self.failures_in_a_row >= self.max_failures:
            self.error = f"{self.failures_in_a_row} trials in a row failed; the last: {what}"
            study.stop()
        elif self.full(study):
            study.stop()

    def summary(self, study: optuna.Study) -> str:
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        return f"study {study.study_name}: {counts} | {_best(study)}"


def _best(study: optuna.Study) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "no completed trial yet"
    return f"best {best.value:.4f} (trial {best.number})"
