"""What a study leaves for people: the best trial as a preset YAML, and a report (PNG plots + markdown table).

``--export-preset NAME`` writes ``<out>/<study>/NAME.yaml``: the preset the study started from plus every field the
best trial changed, and the trial's budget as ``minutes``; ``a1-pretrain --config NAME.yaml`` trains it. It is
built from the config stored in the study, so any worker's machine can export any trial.

``--report`` writes ``history.png`` (objective per trial, best so far), ``importances.png`` (PED-ANOVA parameter
importances, with at least two completed trials) and ``report.md`` (best trial, importances, every trial).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial, TrialState

from pretrain import config as cfgmod

EXPORT_SKIP = (
    "preset", "out", "seed", "timesteps", "minutes", "log_every_s", "checkpoint_minutes", "keep_checkpoints",
    "save_replay_buffer", "torch_threads", "env.threads", "device",
)  # fmt: skip
"""Fields a preset leaves to the run: bookkeeping of the trial, budget (written separately) and machine."""


def preset_doc(config: cfgmod.TrainConfig) -> dict[str, Any]:
    """``config`` as a partial YAML document: its preset plus the fields that differ from that preset."""
    reference = {dotted: value for dotted, value, _ in cfgmod.field_paths(cfgmod.preset(config.preset))}
    changed = {
        dotted: value
        for dotted, value, _ in cfgmod.field_paths(config)
        if dotted not in EXPORT_SKIP and value != reference[dotted]
    }
    return {"preset": config.preset, **cfgmod.unflatten(changed), "minutes": config.minutes}


def export_preset(study: Any, path: Path, name: str) -> Path:
    try:
        best = study.best_trial
    except ValueError:
        raise ValueError(f"study {study.study_name!r} has no completed trial yet: nothing to export") from None
    config = cfgmod.from_dict(best.user_attrs["config"])
    score = best.user_attrs.get("score", {})
    header = (
        f"# {name}: best trial ({best.number}) of the Optuna study {study.study_name!r}, exported "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n"
        f"# objective {best.value:.4f}: max tracking error {score.get('tracking_error_max', math.nan):.3f} m/s, "
        f"falls {score.get('falls')}, return {score.get('return_20s', math.nan):.2f} after {config.minutes:g} min\n"
        f"# train it: a1-pretrain --config {path.name} [--minutes M --seed S]\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(preset_doc(config), sort_keys=False))
    return path


def searched_values(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's sampled parameters in config units (``log2(x)`` -> ``x``)."""
    out = {}
    for name, value in trial.params.items():
        if name.startswith("log2(") and name.endswith(")"):
            out[name[5:-1]] = 2 ** int(value)
        else:
            out[name] = value
    return out


def write_report(study: Any, out_dir: Path) -> list[str]:
    """Write the report files; return one line per file (or per thing that could not be shown)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    lines = [f"wrote {plot_history(study.study_name, complete, out_dir / 'history.png')}"]
    importances: dict[str, float] = {}
    note = ""
    if len(complete) < 2:
        note = f"parameter importances need at least 2 completed trials; the study has {len(complete)}"
    else:
        import optuna

        try:
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError, AssertionError) as exc:
            note = f"parameter importances could not be computed: {exc}"
    if importances:
        lines.append(f"wrote {plot_importances(study.study_name, importances, out_dir / 'importances.png')}")
    else:
        (out_dir / "importances.png").unlink(missing_ok=True)
        lines.append(note)
    (out_dir / "report.md").write_text(markdown(study, trials, importances, note))
    lines.append(f"wrote {out_dir / 'report.md'}")
    return lines


def plot_history(name: str, complete: list[FrozenTrial], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 4.5))
    if complete:
        numbers = [t.number for t in complete]
        values = [t.value for t in complete]
        best = [min(values[: i + 1]) for i in range(len(values))]
        ax.scatter(numbers, values, s=18, label="completed trial")
        ax.step(numbers, best, where="post", color="C3", label="best so far")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no completed trial yet", ha="center", va="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel("objective (lower is better)")
    ax.set_title(f"{name}: optimization history")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_importances(name: str, importances: dict[str, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.5))
    ax.barh(names, [importances[n] for n in names], color="C0")
    ax.set_xlabel("importance (PED-ANOVA)")
    ax.set_title(f"{name}: parameter importances")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(study: Any, trials: list[FrozenTrial], importances: dict[str, float], note: str) -> str:
    states = [t.state.name for t in trials]
    counts = ", ".join(
        f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING") if s in states
    )
    setup = study.user_attrs.get("tune_setup", {})
    out = [f"# Study `{study.study_name}`", "", f"Trials: {counts or 'none'}; {setup.get('trial_minutes')} min each."]
    try:
        best = study.best_trial
        out += ["", f"Best: trial {best.number}, objective {best.value:.4f}, run directory "
                f"`{best.user_attrs.get('run_dir')}` on `{best.user_attrs.get('worker')}`."]  # fmt: skip
    except ValueError:
        pass
    out += ["", "## Parameter importances", ""]
    if importances:
        complete = sum(1 for t in trials if t.state == TrialState.COMPLETE)
        if complete < 10:  # PED-ANOVA compares the best trials with the rest: a handful says little
            out += [f"(from {complete} completed trials: little to go on yet)", ""]
        out += ["| parameter | importance |", "|---|---|"]
        out += [f"| {name} | {value:.3f} |" for name, value in importances.items()]
    else:
        out.append(note)
    keys = sorted({k for t in trials for k in searched_values(t)})
    out += [
        "",
        "## Trials",
        "",
        "| trial | state | objective | tracking max | falls | return | " + " | ".join(keys) + " |",
    ]
    out.append("|" + "---|" * (6 + len(keys)))
    for t in trials:
        if t.user_attrs.get("surplus"):
            continue
        s, params = t.user_attrs.get("score", {}), searched_values(t)
        cells = [
            str(t.number),
            t.state.name.lower(),
            _fmt(t.value),
            _fmt(s.get("tracking_error_max")),
            _fmt(s.get("falls")),
            _fmt(s.get("return_20s")),
        ]
        cells += [_fmt(params.get(k)) for k in keys]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
