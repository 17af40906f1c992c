"""Action bounds by a named method, and the command that measures them from a trained PPO policy.

The bounds are part of the contract (they change its hash): an agent outputs a normalized action in
[-1, 1] and the contract maps it linearly to [low, high] raw units (raw x action_scale = joint target
offset from the default pose, rad). SAC/TQC squash with tanh, so the bounds are exactly their
exploration range at initialization; that is the seed's finding, and why the method is a choice
recorded in every bundle, never an inherited constant.

``python -m pretrain bounds PPO_BUNDLE -o bounds.json`` rolls out a trained PPO policy (bundle from
``python -m pretrain train --preset ppo_wide``) and writes per-joint percentiles of its raw actions;
``--bounds.method ppo_percentile --bounds.source bounds.json`` trains with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from a1_common.atomic import atomic_write
from a1_common.cli import ArgumentParser, run_main
from a1_contract import ActionBounds, TaskContract
from a1_contract.variants import isaaclab3_bounds, joint_limit_bounds, ppo_percentile_bounds
from pretrain.config import BoundsConfig

BOUNDS_FILE_KIND = "a1_sim2real.action_bounds"


def resolve_bounds(cfg: BoundsConfig, contract: TaskContract) -> ActionBounds:
    """The :class:`ActionBounds` that ``cfg`` names, in the contract's joint order."""
    n = contract.num_joints
    if cfg.method == "isaaclab3":
        bounds = isaaclab3_bounds()
    elif cfg.method == "symmetric":
        bounds = ActionBounds.symmetric(cfg.width, n)
    elif cfg.method == "explicit":
        if cfg.low is None or cfg.high is None or len(cfg.low) != n or len(cfg.high) != n:
            raise ValueError(f"bounds.method 'explicit' needs bounds.low and bounds.high with {n} values each")
        bounds = ActionBounds(tuple(cfg.low), tuple(cfg.high), "explicit")
    elif cfg.method == "ppo_percentile":
        bounds = load_bounds_file(cfg.source, contract) if cfg.source else ppo_percentile_bounds()
    elif cfg.method == "joint_limits":
        bounds = joint_limit_bounds(contract)
    else:
        raise ValueError(f"unknown bounds.method {cfg.method!r}")
    if cfg.scale != 1.0:
        if not cfg.scale > 0:
            raise ValueError(f"bounds.scale must be > 0, got {cfg.scale}")
        bounds = ActionBounds(
            tuple(np.asarray(bounds.low) * cfg.scale),
            tuple(np.asarray(bounds.high) * cfg.scale),
            f"{bounds.method}_x{cfg.scale:g}",
        )
    if len(bounds.low) != n:
        raise ValueError(f"bounds have {len(bounds.low)} joints, the contract {n}")
    if cfg.clip_to_targets:
        bounds = clip_to_target_limits(bounds, contract)
    return bounds


def clip_to_target_limits(bounds: ActionBounds, contract: TaskContract) -> ActionBounds:
    """``bounds`` intersected with the contract's joint-target limits in raw units (method name + ``_clip``).

    The seed author's PPO percentiles put the calf's upper bound (3.4 raw = -0.65 rad) beyond the A1's hard
    calf limit (-0.92 rad): a squashed policy that saturates there pins the leg straight against the limit,
    and the robot's safety layer would clamp those targets anyway.
    """
    lo_lim, hi_lim = contract.raw_target_limits()
    low = np.maximum(np.asarray(bounds.low), lo_lim)
    high = np.minimum(np.asarray(bounds.high), hi_lim)
    if np.array_equal(low, bounds.low) and np.array_equal(high, bounds.high):
        return bounds
    if not (low < high).all():
        bad = [contract.joint_names[i] for i in np.flatnonzero(~(low < high))]
        raise ValueError(f"bounds lie entirely outside the joint-target limits at {bad}")
    return ActionBounds(tuple(float(v) for v in low), tuple(float(v) for v in high), f"{bounds.method}_clip")


def percentile_bounds(raw_actions: np.ndarray, lower: float = 2.5, upper: float = 97.5) -> ActionBounds:
    """Per-joint percentiles of raw actions (N, J) as bounds (the seed author's Part II method)."""
    raw_actions = np.asarray(raw_actions, dtype=float)
    if raw_actions.ndim != 2 or len(raw_actions) < 100:
        raise ValueError(f"need at least 100 actions of shape (N, joints), got {raw_actions.shape}")
    if not np.isfinite(raw_actions).all():
        raise ValueError("actions contain NaN or inf")
    low, high = np.percentile(raw_actions, [lower, upper], axis=0)
    too_close = high - low < 1e-3  # a joint the policy never moves: keep a usable width
    mid = 0.5 * (low + high)
    low = np.where(too_close, mid - 0.05, low)
    high = np.where(too_close, mid + 0.05, high)
    return ActionBounds(tuple(np.round(low, 4)), tuple(np.round(high, 4)), "ppo_percentile")


def save_bounds_file(path: str | Path, bounds: ActionBounds, contract: TaskContract, **provenance: object) -> Path:
    doc = {
        "kind": BOUNDS_FILE_KIND,
        "version": 1,
        "joint_names": list(contract.joint_names),
        "low": list(bounds.low),
        "high": list(bounds.high),
        "method": bounds.method,
        **provenance,
    }
    path = Path(path)
    return atomic_write(path, json.dumps(doc, indent=2) + "\n")


def load_bounds_file(path: str | Path, contract: TaskContract) -> ActionBounds:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read bounds file {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != BOUNDS_FILE_KIND or doc.get("version") != 1:
        raise ValueError(f"{path} is not a version-1 bounds file (kind {BOUNDS_FILE_KIND!r})")
    if list(doc.get("joint_names", [])) != list(contract.joint_names):
        raise ValueError(f"{path}: joint order {doc.get('joint_names')} differs from the contract's")
    return ActionBounds(tuple(doc["low"]), tuple(doc["high"]), str(doc.get("method", "ppo_percentile")))


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from pretrain.rollout import collect_actions  # torch and SB3 only when measuring

    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="PPO checkpoint bundle or run directory")
    parser.add_argument("-o", "--out", default="bounds.json", help="bounds JSON to write")
    parser.add_argument("--steps", type=int, default=500, help="policy steps per env to roll out")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--percentiles", type=float, nargs=2, default=(2.5, 97.5), metavar=("LOW", "HIGH"))
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")
    args = parser.parse_args(argv)
    raw, contract, meta = collect_actions(args.bundle, args.steps, args.num_envs, deterministic=not args.stochastic)
    if meta.get("algo") != "ppo":
        print(f"note: {args.bundle} was trained with {meta.get('algo')}, not PPO")
    bounds = percentile_bounds(raw, *args.percentiles)
    lo, hi = args.percentiles
    save_bounds_file(
        args.out, bounds, contract, percentiles=[lo, hi], source_bundle=str(args.bundle), num_actions=len(raw)
    )
    for name, low, high in zip(contract.joint_names, bounds.low, bounds.high, strict=True):
        print(f"  {name:<18} [{low:+.2f}, {high:+.2f}]")
    print(f"wrote {args.out} ({len(raw)} actions, percentiles {lo}/{hi})")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain bounds")
