"""Action-space diagnostics: how much of its action bounds a policy uses, and what exploration looks like at init.

Why this exists (../shared/design/OFFPOLICY_ANCHORS.md, part (a)): SB3's SAC/TQC squash a Gaussian with tanh and
rescale it to the action bounds, so with Isaac Lab 2.x's ``[-100, 100]`` bounds their very first actions are huge
random joint targets (``100 * action_scale = 25 rad``). PPO samples an unbounded ``N(mean, sigma0 = 1)`` in raw units,
so it only ever visits a few percent of those bounds. The functions here measure that gap on recorded actions
(:func:`bounds_usage`, :func:`bounds_warning`, :func:`plot_action_histograms`) and show it at initialization
(:func:`initial_distributions`, :func:`plot_initial_distributions`).

All actions are in RAW units (before ``action_scale``), the units of :class:`a1_contract.ActionBounds`.
Plots use matplotlib's Agg canvas directly (no pyplot, no global backend change).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from a1_contract import ActionBounds, TaskContract

SATURATION_LEVEL = 0.98
"""A normalized action with ``|a| > SATURATION_LEVEL`` is within 1% of the bound width of a bound."""


def _as_actions(raw_actions: np.ndarray, bounds: ActionBounds) -> np.ndarray:
    raw = np.asarray(raw_actions, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != len(bounds.low) or raw.shape[0] < 1:
        raise ValueError(f"raw_actions must have shape (N >= 1, {len(bounds.low)}), got {raw.shape}")
    return raw


def _names(joint_names: Sequence[str] | None, num: int) -> list[str]:
    names = list(joint_names) if joint_names is not None else [f"joint_{i}" for i in range(num)]
    if len(names) != num:
        raise ValueError(f"expected {num} joint names, got {len(names)}")
    return names


def bounds_usage(
    raw_actions: np.ndarray,
    bounds: ActionBounds,
    percentiles: tuple[float, float] = (2.5, 97.5),
    joint_names: Sequence[str] | None = None,
) -> dict:
    """How much of ``bounds`` the raw actions ``(N, J)`` use, per joint and overall (JSON-serializable).

    Per joint: the bounds, the used ``percentiles`` (``p_low``, ``p_high``), min/max/mean, ``used_fraction`` (width of
    the central percentile range / bound width), ``width_ratio`` (its inverse, ``None`` for a constant action),
    ``saturated_fraction`` (share of samples with normalized ``|a| > 0.98``, i.e. within 1% of a bound) and
    ``outside_fraction`` (share outside the bounds, which SB3 would clip). ``summary`` aggregates these over joints;
    ``volume_fraction`` is the product of the used fractions (share of the bound box the central box fills).
    """
    raw = _as_actions(raw_actions, bounds)
    names = _names(joint_names, raw.shape[1])
    low, high = np.asarray(bounds.low, dtype=np.float64), np.asarray(bounds.high, dtype=np.float64)
    p_low, p_high = np.percentile(raw, list(percentiles), axis=0)
    used_width = p_high - p_low
    used_fraction = used_width / (high - low)
    saturated = np.abs(bounds.to_normalized(raw)) > SATURATION_LEVEL
    outside = (raw < low) | (raw > high)
    per_joint = [
        {
            "name": names[j],
            "low": float(low[j]),
            "high": float(high[j]),
            "p_low": float(p_low[j]),
            "p_high": float(p_high[j]),
            "min": float(raw[:, j].min()),
            "max": float(raw[:, j].max()),
            "mean": float(raw[:, j].mean()),
            "used_fraction": float(used_fraction[j]),
            "width_ratio": float((high[j] - low[j]) / used_width[j]) if used_width[j] > 0 else None,
            "saturated_fraction": float(saturated[:, j].mean()),
            "outside_fraction": float(outside[:, j].mean()),
        }
        for j in range(raw.shape[1])
    ]
    return {
        "method": bounds.method,
        "num_samples": int(raw.shape[0]),
        "num_joints": int(raw.shape[1]),
        "percentiles": [float(p) for p in percentiles],
        "joints": per_joint,
        "summary": {
            "mean_used_fraction": float(used_fraction.mean()),
            "min_used_fraction": float(used_fraction.min()),
            "max_used_fraction": float(used_fraction.max()),
            "volume_fraction": float(np.prod(np.clip(used_fraction, 0.0, None))),
            "mean_saturated_fraction": float(saturated.mean()),
            "max_saturated_fraction": float(saturated.mean(axis=0).max()),
            "outside_fraction": float(outside.any(axis=1).mean()),
        },
    }


def bounds_warning(usage: dict, wide_ratio: float = 4.0, saturated_max: float = 0.2) -> str | None:
    """A message naming joints whose bounds are too wide or too narrow for the policy, else ``None``.

    Too wide: bound width > ``wide_ratio`` x the used percentile width (SAC's initial exploration then spans mostly
    unused, possibly absurd joint targets). Too narrow: the action sits within 1% of a bound more than ``saturated_max``
    of the time.
    """
    lo_p, hi_p = usage["percentiles"]
    wide, narrow = [], []
    for j in usage["joints"]:
        used = j["p_high"] - j["p_low"]
        if j["high"] - j["low"] > wide_ratio * used:
            ratio = "inf" if j["width_ratio"] is None else f"{j['width_ratio']:.1f}x"
            wide.append(
                f"{j['name']} (bounds [{j['low']:.3g}, {j['high']:.3g}] vs used [{j['p_low']:.3g}, "
                f"{j['p_high']:.3g}], {ratio})"
            )
        if j["saturated_fraction"] > saturated_max:
            narrow.append(f"{j['name']} ({100 * j['saturated_fraction']:.0f}% at a bound)")
    parts = []
    if wide:
        parts.append(
            f"action bounds '{usage['method']}' are more than {wide_ratio:g}x wider than the {lo_p:g}-{hi_p:g} "
            f"percentile range the policy uses on {len(wide)}/{len(usage['joints'])} joints: {'; '.join(wide)}. "
            "SAC/TQC explore uniformly over the bounds; consider tighter (e.g. percentile) bounds."
        )
    if narrow:
        parts.append(
            f"action bounds '{usage['method']}' look too narrow: the policy saturates more than "
            f"{100 * saturated_max:.0f}% of the time on {len(narrow)}/{len(usage['joints'])} joints: "
            f"{'; '.join(narrow)}."
        )
    return "\n".join(parts) if parts else None


def _new_figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_png: str | Path) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def plot_action_histograms(
    raw_actions: np.ndarray,
    bounds: ActionBounds,
    joint_names: Sequence[str],
    out_png: str | Path,
    title: str = "Raw actions per joint vs action bounds",
    percentiles: tuple[float, float] = (2.5, 97.5),
    bins: int = 60,
) -> Path:
    """One histogram per joint (3 x 4 for the A1) with the bounds and the used percentiles marked; returns the path.

    Bins span the data only (so a narrow distribution keeps its shape), while the x-limits cover data and bounds.
    """
    raw = _as_actions(raw_actions, bounds)
    usage = bounds_usage(raw, bounds, percentiles, joint_names)
    ncols = 4
    nrows = math.ceil(raw.shape[1] / ncols)
    fig = _new_figure((4.0 * ncols, 2.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for k, j in enumerate(usage["joints"]):
        ax = axes[k]
        ax.hist(raw[:, k], bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(j["low"], color="tab:red", ls="--", label=f"bounds ({bounds.method})")
        ax.axvline(j["high"], color="tab:red", ls="--")
        ax.axvline(j["p_low"], color="tab:green", ls=":", label=f"used {percentiles[0]:g}/{percentiles[1]:g}%")
        ax.axvline(j["p_high"], color="tab:green", ls=":")
        lo, hi = min(j["min"], j["low"]), max(j["max"], j["high"])
        pad = 0.03 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_title(j["name"], fontsize=10)
        ax.text(
            0.02,
            0.95,
            f"used [{j['p_low']:.3g}, {j['p_high']:.3g}] = {100 * j['used_fraction']:.1f}%\n"
            f"sat {100 * j['saturated_fraction']:.1f}%",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
    for ax in axes[raw.shape[1] :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle(
        f"{title}\n(mean used fraction {100 * usage['summary']['mean_used_fraction']:.1f}%, "
        f"{usage['num_samples']} samples)"
    )
    return _save(fig, out_png)


def initial_distributions(
    bounds: ActionBounds,
    *,
    sac_log_std_init: float = 0.0,
    sac_std: float | None = None,
    ppo_std: float = 1.0,
    n: int = 100_000,
    seed: int = 0,
    clip: bool = True,
) -> dict[str, np.ndarray]:
    """Samples ``(n, J)`` in RAW units of the actions each algorithm takes at initialization (actor mean ~0).

    ``ppo``: ``N(0, ppo_std)`` in raw units, clipped to the bounds when ``clip`` (SB3 PPO clips to the action space).
    ``sac``: ``bounds.to_raw(tanh(N(0, std)))`` with ``std = sac_std or exp(sac_log_std_init)`` (SB3 SAC's
    state-dependent log-std head starts near 0). Its zero action is the bounds' midpoint, not raw 0, when the
    bounds are asymmetric.
    ``sac_warmup``: uniform over the bounds, what SB3 off-policy algorithms take for the first ``learning_starts``
    steps.
    """
    rng = np.random.default_rng(seed)
    num = len(bounds.low)
    low, high = np.asarray(bounds.low), np.asarray(bounds.high)
    std = float(sac_std) if sac_std is not None else math.exp(sac_log_std_init)
    ppo = rng.normal(0.0, ppo_std, size=(n, num))
    if clip:
        ppo = np.clip(ppo, low, high)
    sac = bounds.to_raw(np.tanh(rng.normal(0.0, std, size=(n, num))))
    warmup = rng.uniform(low, high, size=(n, num))
    return {"ppo": ppo, "sac": sac, "sac_warmup": warmup}


def _symlog_edges(limit: float, linthresh: float, bins: int) -> np.ndarray:
    """Bin edges uniform in ``sign(x) log1p(|x| / linthresh)`` over ``[-limit, limit]``."""
    top = math.log1p(limit / linthresh)
    y = np.linspace(-top, top, bins + 1)
    return np.sign(y) * linthresh * np.expm1(np.abs(y))


def plot_initial_distributions(
    bounds_list: Sequence[ActionBounds],
    out_png: str | Path,
    joint_index: int | None = 0,
    joint_names: Sequence[str] | None = None,
    *,
    sac_log_std_init: float = 0.0,
    ppo_std: float = 1.0,
    n: int = 50_000,
    seed: int = 0,
    clip: bool = True,
    bins: int = 120,
    title: str | None = None,
) -> Path:
    """One row per bounds preset: PPO's vs SAC's initial raw-action distribution, bounds marked; returns the path.

    ``joint_index=None`` pools all joints (then the bounds' envelope is marked). The x-axis is symlog (linear within
    +-1, logarithmic beyond) and bins are uniform on that scale, so ``[-100, 100]`` and ``[-1, 1]`` are both readable.
    """
    if not bounds_list:
        raise ValueError("bounds_list is empty")
    fig = _new_figure((13.0, 2.6 * len(bounds_list)))
    axes = fig.subplots(len(bounds_list), 1, squeeze=False).ravel()
    for ax, bounds in zip(axes, bounds_list, strict=True):
        d = initial_distributions(bounds, sac_log_std_init=sac_log_std_init, ppo_std=ppo_std, n=n, seed=seed, clip=clip)
        sel = slice(None) if joint_index is None else joint_index
        low, high = np.atleast_1d(np.asarray(bounds.low)[sel]), np.atleast_1d(np.asarray(bounds.high)[sel])
        mid = np.atleast_1d(0.5 * (low + high))
        ppo, sac = d["ppo"][:, sel].ravel(), d["sac"][:, sel].ravel()
        limit = max(float(np.abs(low).max()), float(np.abs(high).max()), float(np.abs(ppo).max())) * 1.15
        edges = _symlog_edges(limit, 1.0, bins)
        weights = np.full(ppo.shape, 1.0 / ppo.size)
        ax.hist(
            ppo,
            bins=edges,
            weights=weights,
            alpha=0.6,
            color="tab:orange",
            label=f"PPO N(0, {ppo_std:g}){' clipped' if clip else ''}",
        )
        ax.hist(
            sac,
            bins=edges,
            weights=weights,
            alpha=0.6,
            color="tab:blue",
            label=f"SAC tanh(N(0, {math.exp(sac_log_std_init):.3g})) -> bounds",
        )
        ax.axvline(low.min(), color="tab:red", ls="--", label="bounds" + (" envelope" if low.size > 1 else ""))
        ax.axvline(high.max(), color="tab:red", ls="--")
        ax.axvline(0.0, color="black", lw=0.8, label="raw 0 (PPO mean)")
        if low.size == 1:
            ax.axvline(mid[0], color="tab:blue", ls=":", label="bounds midpoint (SAC zero action)")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(-limit, limit)
        name = (
            "all joints"
            if joint_index is None
            else (joint_names[joint_index] if joint_names is not None else f"joint {joint_index}")
        )
        ppo_q, sac_q = np.percentile(ppo, [2.5, 97.5]), np.percentile(sac, [2.5, 97.5])
        ax.set_title(
            f"{bounds.method} ({name}): 95% of PPO in [{ppo_q[0]:.2g}, {ppo_q[1]:.2g}], "
            f"of SAC in [{sac_q[0]:.2g}, {sac_q[1]:.2g}]",
            fontsize=10,
        )
        ax.set_ylabel("fraction")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes[-1].set_xlabel("raw action (x action_scale = joint target offset, rad); symlog scale")
    fig.suptitle(
        title
        or "Initial exploration in raw action units: PPO's unbounded Gaussian vs SAC's squashed "
        "Gaussian rescaled to the bounds"
    )
    return _save(fig, out_png)


# ---- per joint group (hip, thigh, calf): the bounds ablation's figures and numbers ----
GROUPS = ("hip", "thigh", "calf")


def group_columns(joint_names: Sequence[str]) -> dict[str, list[int]]:
    """Joint indices of each group (:data:`GROUPS`), from the joint names."""
    return {g: [i for i, name in enumerate(joint_names) if f"_{g}" in name] for g in GROUPS}


def initial_stats(bounds: ActionBounds, contract: TaskContract, d: dict[str, np.ndarray]) -> dict:
    """How far PPO's and SAC's first actions go in raw units, per joint group, and how many stay in the joints' range.

    ``sac_within_targets``: share of SAC's initial raw actions inside the contract's joint-target limits (beyond
    them the target is clamped: dead range). ``sac_warmup``: the uniform actions of the first ``learning_starts``.
    ``d``: samples from :func:`pretrain.action_diagnostics.initial_distributions` for ``bounds``.
    """
    lo, hi = contract.raw_target_limits()
    inside = {k: float(((v >= lo) & (v <= hi)).mean()) for k, v in d.items()}
    cols = group_columns(contract.joint_names)
    p95 = {
        g: {k: [round(float(q), 3) for q in np.percentile(d[k][:, c], [2.5, 97.5])] for k in ("ppo", "sac")}
        for g, c in cols.items()
    }
    return {
        "bounds": bounds.method,
        "low": [round(float(v), 3) for v in bounds.low],
        "high": [round(float(v), 3) for v in bounds.high],
        "sac_within_targets": round(inside["sac"], 4),
        "sac_warmup_within_targets": round(inside["sac_warmup"], 4),
        "ppo_within_targets": round(inside["ppo"], 4),
        "p2_5_p97_5": p95,
    }


def plot_groups(
    rows: dict[str, tuple[ActionBounds, dict[str, np.ndarray]]],
    contract: TaskContract,
    out_png: Path,
    title: str,
    bins: int = 100,
) -> Path:
    """One row per label, one column per joint group: pooled histograms of raw actions (symlog x), the group's
    bounds (red: per joint), and the joint-target limits (grey)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = group_columns(contract.joint_names)
    t_lo, t_hi = contract.raw_target_limits()
    fig = Figure(figsize=(15.0, 2.3 * len(rows) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(GROUPS), squeeze=False)
    colors = ("tab:orange", "tab:blue", "tab:green")
    for r, (label, (bounds, series)) in enumerate(rows.items()):
        low, high = np.asarray(bounds.low), np.asarray(bounds.high)
        for c, group in enumerate(GROUPS):
            ax, j = axes[r, c], cols[group]
            data = {name: np.asarray(v)[:, j].ravel() for name, v in series.items()}
            limit = 1.15 * max([np.abs(low[j]).max(), np.abs(high[j]).max(), np.abs(t_lo[j]).max(), t_hi[j].max()]
                               + [np.percentile(np.abs(v), 99.9) for v in data.values() if v.size])  # fmt: skip
            edges = _symlog_edges(limit, 1.0, bins)
            for color, (name, values) in zip(colors, data.items(), strict=False):
                if values.size:
                    weights = np.full(values.size, 1 / values.size)
                    ax.hist(values, edges, weights=weights, histtype="stepfilled", alpha=0.55, color=color, label=name)
            for k, (a, b) in enumerate(zip(low[j], high[j], strict=True)):
                ax.axvline(a, color="tab:red", ls="--", lw=1, label="bounds" if k == 0 else None)
                ax.axvline(b, color="tab:red", ls="--", lw=1)
            ax.axvline(t_lo[j].min(), color="grey", ls=":", lw=1.2, label="joint-target limits")
            ax.axvline(t_hi[j].max(), color="grey", ls=":", lw=1.2)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(-limit, limit)
            ax.set_title(f"{label}: {group}", fontsize=9)
            if c == 0:
                ax.set_ylabel("fraction")
    for ax in axes[-1]:
        ax.set_xlabel(f"raw action (x {contract.action_scale:g} = rad from the default pose), symlog")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle(title)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    return out_png
