"""Learning curves: a CSV written while training, and the PNG people look at afterwards.

``curve.csv`` columns: ``time_s`` (wall-clock since the run started, resumes included), ``timesteps``
(transitions), ``episodes`` (finished so far), ``ep_return``, ``ep_length``, ``tracking_error``
(m/s, mean over an episode of |command_xy - body velocity_xy|) averaged over the episodes that ended
since the previous row, then one ``term/<name>`` column per reward term (weighted episode sums).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BASE_COLUMNS = ("time_s", "timesteps", "episodes", "ep_return", "ep_length", "tracking_error")


class CurveWriter:
    """Appends rows to ``curve.csv`` (append mode, so a resumed run extends its curve)."""

    def __init__(self, path: str | Path, term_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(BASE_COLUMNS) + [f"term/{name}" for name in term_names]
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != self.columns:
                raise ValueError(f"{self.path}: existing columns {header} differ from {self.columns}")
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (kept open for the run)
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(self.columns)
            self._file.flush()

    def write(self, row: Mapping[str, float]) -> None:
        self._writer.writerow([_fmt(row.get(c, math.nan)) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_curve(path: str | Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {key: [float(r[key]) if r[key] not in ("", None) else math.nan for r in rows] for key in rows[0]}


def plot_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    out_png: str | Path,
    *,
    title: str = "learning curve",
    threshold: float | None = None,
) -> Path:
    """Episode return, tracking error and episode length against wall-clock, one line per run label."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, curve in curves.items():
        if not curve:
            continue
        minutes = [t / 60.0 for t in curve["time_s"]]
        axes[0].plot(minutes, curve["ep_return"], label=label)
        axes[1].plot(minutes, curve["tracking_error"], label=label)
        axes[2].plot(minutes, curve["ep_length"], label=label)
    axes[0].set_ylabel("episode return")
    axes[1].set_ylabel("tracking error |cmd_xy - v_xy| (m/s)")
    axes[2].set_ylabel("episode length (steps)")
    if threshold is not None:
        axes[1].axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold} m/s")
    for ax in axes:
        ax.set_xlabel("wall-clock (min)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def plot_reward_terms(curve: Mapping[str, Sequence[float]], out_png: str | Path, title: str = "reward terms") -> Path:
    """Each reward term's weighted episode sum against wall-clock."""
    fig, ax = plt.subplots(figsize=(9, 5))
    minutes = [t / 60.0 for t in curve["time_s"]]
    for key, values in curve.items():
        if key.startswith("term/"):
            ax.plot(minutes, values, label=key[5:])
    ax.set_xlabel("wall-clock (min)")
    ax.set_ylabel("weighted episode sum")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
