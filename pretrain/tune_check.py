"""``python -m pretrain tune --study-name NAME --n-trials 0 --check-seeds 1,2,3``: did the search find something, or a
lucky seed? The best trial's config and the study's base config (the preset with the ``--fix`` values: what a user
runs without the search) trained again on fresh seeds, with the study's budget and scoring, two at a time (one core
each, the pair of a seed side by side so that both see the same load).

Run directories: ``<out>/<study>/check/{best,base}_seed<N>/`` (kept; a run whose score is already there is not
trained again, so an interrupted check continues). Prints a table and one JSON line::

    {"metric": "tune_check", "value": <mean objective of the best config>, "baseline": <the base's>,
     "wins": <seeds where the best config scored lower>, "seeds": [...], "best": {...}, "base": {...}, ...}
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from a1_common.cli import UsageError
from pretrain import config as cfgmod
from pretrain.jobs import Job, run_jobs
from pretrain.tune_trial import with_trial_budget

TRAINER = "import sys\nfrom pretrain.tune_trial import trainer_main\nsys.exit(trainer_main(sys.argv[1:]))"


def configs(study: Any, run_root: Path, seeds: list[int]) -> dict[str, cfgmod.TrainConfig]:
    """``{"best_seed1": config, "base_seed1": config, ...}``: the best trial's and the base's, per seed, with the
    study's budget; in the order they are trained (a seed's pair together)."""
    setup = study.user_attrs.get("tune_setup")
    if setup is None:
        raise UsageError(f"study {study.study_name!r} has no stored set-up: run trials first")
    try:
        best = study.best_trial
    except ValueError:
        raise UsageError(f"study {study.study_name!r} has no completed trial to check") from None
    minutes = float(setup["trial_minutes"])
    variants = {
        "best": cfgmod.from_dict(best.user_attrs["config"]),
        "base": cfgmod.merge(cfgmod.TrainConfig(), cfgmod.unflatten(setup["base"])),
    }
    out = {}
    for seed in seeds:
        for label, config in variants.items():
            run = run_root / "check" / f"{label}_seed{seed}"
            out[f"{label}_seed{seed}"] = with_trial_budget(config, minutes, run, seed=seed)
    return out


def train_and_score(runs: dict[str, cfgmod.TrainConfig], scoring: dict[str, Any], jobs: int) -> dict[str, dict]:
    """Each run's ``tune_score.json`` (trained here unless already there), ``jobs`` runs at a time."""
    todo = []
    for name, config in runs.items():
        run = Path(config.out)
        if (run / "tune_score.json").exists():
            continue
        if run.exists() and any(run.iterdir()):
            raise UsageError(f"{run} holds an unfinished run (no tune_score.json): remove it to train it again")
        run.parent.mkdir(parents=True, exist_ok=True)
        config_path = run.parent / f"{name}.yaml"
        config_path.write_text(config.to_yaml())
        cmd = [sys.executable, "-c", TRAINER, str(config_path), json.dumps(scoring)]
        todo.append(Job(name, cmd, run.parent / f"{name}.log"))
        print(f"[check] {name}: {config.minutes:g} min of training, then scored", flush=True)

    def done(job: Job, code: int, minutes: float) -> None:
        print(f"[check] {job.name}: done, exit {code} ({minutes:.1f} min)", flush=True)

    codes = run_jobs(todo, jobs, on_done=done)
    logs = {job.name: job.log for job in todo}
    failed = [f"{name} (exit {code}, see {logs[name]})" for name, code in codes.items() if code]
    if failed:
        raise RuntimeError(f"check runs failed: {', '.join(failed)}")
    return {name: json.loads((Path(config.out) / "tune_score.json").read_text()) for name, config in runs.items()}


def check(study: Any, run_root: Path, seeds: list[int], jobs: int = 2) -> dict[str, Any]:
    """Train and score (``configs``), then the table and the result (also written to ``<run_root>/check.json``)."""
    runs = configs(study, run_root, seeds)
    scores = train_and_score(runs, study.user_attrs["tune_setup"]["scoring"], jobs)
    objective = {label: [scores[f"{label}_seed{s}"]["objective"] for s in seeds] for label in ("best", "base")}
    keys = ("objective", "tracking_error_max", "tracking_error_mean", "falls", "return_20s")
    print("| seed | " + " | ".join(f"best {k} / base" for k in keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for s in seeds:
        cells = [f"{scores[f'best_seed{s}'][k]:.3g} / {scores[f'base_seed{s}'][k]:.3g}" for k in keys]
        print(f"| {s} | " + " | ".join(cells) + " |")

    def summary(label: str) -> dict[str, Any]:
        values = objective[label]
        per_key = {k: round(statistics.fmean(scores[f"{label}_seed{s}"][k] for s in seeds), 4) for k in keys}
        return {**per_key, "objective_std": round(statistics.pstdev(values), 4), "objectives": values}

    best, base = summary("best"), summary("base")
    result = {
        "metric": "tune_check",
        "value": best["objective"],
        "baseline": base["objective"],
        "wins": sum(b < a for b, a in zip(objective["best"], objective["base"], strict=True)),
        "seeds": seeds,
        "objective": study.user_attrs["tune_setup"]["scoring"]["objective"],
        "trial_minutes": study.user_attrs["tune_setup"]["trial_minutes"],
        "best_trial": study.best_trial.number,
        "best_params": study.best_trial.params,
        "best": best,
        "base": base,
    }
    (run_root / "check.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
