"""The fine-tuning pipeline's report (:mod:`finetune.pipeline`): ``report.md`` and ``report.png``.

The returns before and after fine-tuning are the ground truth's (the emulator's referee, deterministic policy);
the returns while fine-tuning are what the robot measured (the learner's reward, exploring), episodes cut short by
the end of a run left out. The learner panel reads the learner's ``learner.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_report(out: Path, summary: dict, before: dict, during: dict, after: dict, learner_csv: Path) -> None:
    """``report.png`` (four panels) and ``report.md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0, 0]
    plot_returns(ax, {"zero-shot": before["returns"], "fine-tuned": after["returns"]})
    ax.set_ylabel("ground-truth episode return")
    ax.set_title("Ground-truth return (deterministic policy)")
    plot_during(axes[0, 1], during["episode_log"])
    ax = axes[1, 0]
    terms = sorted({k for e in before["episode_log"] + after["episode_log"] for k in e["true_terms"]})
    if terms:
        scored = lambda rec: [e for e in rec["episode_log"] if e["true_ret"] is not None]
        mean_terms = lambda rec: [np.mean([e["true_terms"].get(k, 0.0) for e in scored(rec)] or [0.0]) for k in terms]
        y = np.arange(len(terms))
        ax.barh(y - 0.2, mean_terms(before), 0.4, label="zero-shot")
        ax.barh(y + 0.2, mean_terms(after), 0.4, label="fine-tuned")
        ax.set_yticks(y, terms)
        ax.legend()
    ax.set_title("Ground-truth reward terms (weighted, per episode)")
    ax = axes[1, 1]
    rows = _read_csv(learner_csv)
    if rows:
        wall = [float(r["wall_s"]) for r in rows]
        ax.plot(wall, [int(r["real_transitions"]) for r in rows], label="transitions received")
        ax.plot(wall, [int(r["updates"]) for r in rows], label="gradient steps")
        ax2 = ax.twinx()
        ax2.step(wall, [int(r["policy_version"]) for r in rows], "g", where="post", label="policy version")
        ax2.set_ylabel("policy version")
        ax.legend(loc="upper left")
    ax.set_xlabel("learner wall-clock (s)")
    ax.set_title("Learner")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=100)
    plt.close(fig)

    s = summary
    safety = {k: v for k, v in s["safety_counters_during"].items() if v}
    missing = s["episodes_without_ground_truth"]
    unscored = f" {missing} episodes had no ground truth and are left out." if missing else ""
    lines = [
        "# Fine-tuning report",
        "",
        f"Bundle `{s['bundle']}`, command {s['command']}, dynamics gap `{json.dumps(s['gap'])}`, "
        f"{s['minutes']} min of emulated robot time.",
        "",
        "| | zero-shot | fine-tuned |",
        "|---|---|---|",
        f"| mean episode return (ground truth) | {s['zero_shot_return']:.3f} | {s['finetuned_return']:.3f} |",
        f"| mean episode return (measured by the robot) | {s['zero_shot_measured_return']:.3f} | "
        f"{s['finetuned_measured_return']:.3f} |",
        f"| episodes | {len(s['zero_shot_returns'])} | {len(s['finetuned_returns'])} |",
        f"| falls | {s['zero_shot_falls']} | {s['finetuned_falls']} |",
        "",
        "Ground truth: the contract's reward computed from the emulator's noise-free state (a referee's motion "
        "capture); measured: the same reward from the robot's sensors, with the gap's sensor noise, which is what "
        f"the learner is given. Returns during fine-tuning are measured.{unscored}",
        "",
        f"- Transitions sent: {s['transitions_sent']} in {s['episodes_during']} episodes ({s['falls_during']} falls).",
        f"- Learner: {s['learner'].get('real_transitions', '?')} transitions received, "
        f"{s['learner'].get('updates', '?')} gradient steps, {s['learner'].get('policy_version', '?')} policies "
        f"published; the actor swapped in {s['policy_swaps']}.",
        f"- Safety events while fine-tuning: {safety or 'none'}.",
        f"- Reward terms not measured on this robot: {s['unmeasured_reward_terms'] or 'none'}.",
        f"- Transport: {s['transport']}.",
        "",
        "![report](report.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


COMPLETE_ENDS = ("timeout", "fall")
"""Episode ends that make a whole episode (:mod:`finetune.actor`): its return is comparable with the others'."""
MIN_BOX_SAMPLES = 5
"""Fewer returns than this in a group: :func:`plot_returns` draws the points and their mean, not a box plot."""


def plot_returns(ax, groups: dict[str, list[float]]) -> str:
    """Returns per group (e.g. zero-shot, fine-tuned) on ``ax``: a box plot (with the mean) when every group has
    at least :data:`MIN_BOX_SAMPLES` returns, else each return as a point and the mean as a bar (a box of one or two
    points has no spread to show, and its quartiles mislead). The y-axis includes 0, so that a small difference
    between two returns is not stretched to the full height of the panel. Returns ``"box"`` or ``"points"``."""
    names = list(groups)
    values = [np.asarray([v for v in groups[n] if v is not None and np.isfinite(v)], dtype=float) for n in names]
    x = np.arange(1, len(names) + 1)
    kind = "box" if all(len(v) >= MIN_BOX_SAMPLES for v in values) else "points"
    if kind == "box":
        ax.boxplot(values, positions=x, showmeans=True)
    else:
        for i, v in zip(x, values, strict=True):
            if len(v):
                offsets = np.linspace(-0.08, 0.08, len(v)) if len(v) > 1 else np.zeros(1)
                ax.scatter(i + offsets, v, s=25, color="C0", alpha=0.8, zorder=3,
                           label="episode return" if i == x[0] else None)  # fmt: skip
                ax.hlines(v.mean(), i - 0.2, i + 0.2, color="C1", lw=2, zorder=4,
                          label="mean" if i == x[0] else None)  # fmt: skip
        ax.legend(loc="lower right", fontsize="small")
    labels = [f"{n}\n(n={len(v)}, mean {v.mean():.3f})" if len(v) else f"{n}\n(no complete episode)"
              for n, v in zip(names, values, strict=True)]  # fmt: skip
    ax.set_xticks(x, labels)
    ax.set_xlim(0.5, len(names) + 0.5)
    finite = np.concatenate([v for v in values if len(v)] or [np.zeros(1)])
    low, high = min(0.0, float(finite.min())), max(0.0, float(finite.max()))
    pad = 0.08 * (high - low) or 1.0
    ax.set_ylim(low - (pad if low < 0 else 0.0), high + pad)
    ax.axhline(0.0, color="0.6", lw=0.8, label="_zero")
    return kind


def plot_during(ax, episodes: list[dict]) -> list[int]:
    """Measured returns of the episodes while fine-tuning, by episode number; falls marked. An episode that did not
    finish (cut short by the end of the run or by a stop: not :data:`COMPLETE_ENDS`) is left out: its return covers
    only part of an episode and would read as a collapse. Returns the episode numbers plotted."""
    shown = [(i, e) for i, e in enumerate(episodes, start=1) if e["end"] in COMPLETE_ENDS]
    if shown:
        ax.plot([i for i, _ in shown], [e["ret"] for _, e in shown], "o-", ms=3, label="measured episode return")
        falls = [(i, e["ret"]) for i, e in shown if e["end"] == "fall"]
        ax.plot([i for i, _ in falls], [r for _, r in falls], "rx", label="fall")
        ax.legend()
    cut = len(episodes) - len(shown)
    note = f"; {cut} unfinished episode{'s' * (cut != 1)} not shown" if cut else ""
    ax.set_xlabel(f"episode during fine-tuning (exploring){note}")
    ax.set_title("While fine-tuning (measured reward)")
    return [i for i, _ in shown]


def _read_csv(path: Path) -> list[dict]:
    import csv

    try:
        with open(path) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []
