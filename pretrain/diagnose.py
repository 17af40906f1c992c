"""``python -m pretrain actions``: which actions does a policy take, and how do they sit in its bounds?

Three views, all PNG files (plus ``usage.json``) in ``--out``:

* ``BUNDLE``: roll out a trained bundle in the embedded simulator, histogram its raw actions per joint
  against the bundle's bounds (``actions.png``); warns when the bounds are far wider than used.
* ``--fresh``: the same for a freshly initialized policy of ``--algo`` with the bounds the config
  names: what exploration looks like at step 0 (SAC's squashed Gaussian spans the whole bounds).
* ``--initial``: PPO's initial Gaussian vs SAC's squashed-and-rescaled Gaussian for several bounds
  presets side by side (``initial_distributions.png``): the seed's finding in one picture.

Examples::

    python -m pretrain actions runs/sac-1/checkpoints/latest -o diag/
    python -m pretrain actions --fresh --algo sac --bounds.method symmetric --bounds.width 100 -o diag/
    python -m pretrain actions --initial -o diag/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from a1_common.cli import ArgumentParser, run_main
from a1_contract import ActionBounds, get_contract
from a1_contract.variants import isaaclab3_bounds, joint_limit_bounds, ppo_percentile_bounds
from pretrain import action_diagnostics as diag
from pretrain import config as cfgmod


def initial_presets() -> list[ActionBounds]:
    contract = get_contract()
    wide = ActionBounds.symmetric(100.0, contract.num_joints)
    wide = ActionBounds(wide.low, wide.high, "isaaclab2 [-100, 100]")
    return [wide, isaaclab3_bounds(), ppo_percentile_bounds(), joint_limit_bounds(contract)]


def fresh_policy_actions(config: cfgmod.TrainConfig, steps: int, num_envs: int) -> tuple[np.ndarray, ActionBounds]:
    """Raw exploration actions of an untrained policy (past ``learning_starts``: the actor's own samples)."""
    from pretrain.factory import make_contract, make_env, make_model, wrap_obs_norm

    contract = make_contract(config)
    env = wrap_obs_norm(make_env(config, contract, num_envs=num_envs), config)
    model = make_model(config, env)
    obs = env.reset()
    actions = []
    for _ in range(steps):
        action, _ = model.predict(obs, deterministic=False)
        actions.append(contract.action_bounds.to_raw(action))
        obs, _, _, _ = env.step(action)
    env.close()
    return np.concatenate(actions), contract.action_bounds


def report(
    raw: np.ndarray, bounds: ActionBounds, joint_names: tuple[str, ...], out: Path, title: str, wide_ratio: float
) -> dict:
    usage = diag.bounds_usage(raw, bounds, joint_names=joint_names)
    png = diag.plot_action_histograms(raw, bounds, joint_names, out / "actions.png", title=title)
    (out / "usage.json").write_text(json.dumps(usage, indent=2) + "\n")
    summary = usage["summary"]
    print(
        f"{title}\n  mean used fraction {summary['mean_used_fraction']:.1%}, "
        f"saturated {summary['mean_saturated_fraction']:.1%} -> {png}"
    )
    message = diag.bounds_warning(usage, wide_ratio)
    if message:
        print(f"WARNING: {message}")
    return usage


def _main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", nargs="?", help="bundle or run directory")
    parser.add_argument("--fresh", action="store_true", help="an untrained policy (config from the flags below)")
    parser.add_argument("--initial", action="store_true", help="initial PPO vs SAC distributions for bounds presets")
    parser.add_argument("-o", "--out", default="diagnostics", help="output directory")
    parser.add_argument("--steps", type=int, default=200, help="policy steps per env")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--stochastic", action="store_true", help="sample (bundle mode); default: the mean action")
    parser.add_argument("--wide-ratio", type=float, default=4.0, help="warn when bounds exceed this x used width")
    parser.add_argument("--algo", choices=cfgmod.ALGOS, default="sac", help="--fresh: algorithm")
    parser.add_argument("--preset", choices=sorted(cfgmod.PRESETS), help="--fresh: preset")
    parser.add_argument("--config", help="--fresh: YAML config")
    for dotted in ("bounds.method", "bounds.width", "bounds.low", "bounds.high", "bounds.source", "bounds.scale"):
        parser.add_argument(f"--{dotted}", dest=dotted, type=yaml.safe_load, default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if sum([bool(args.bundle), args.fresh, args.initial]) != 1:
        parser.error("give exactly one of BUNDLE, --fresh, --initial")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.initial:
        png = diag.plot_initial_distributions(initial_presets(), out / "initial_distributions.png", joint_index=None)
        print(f"initial distributions (PPO N(0,1) vs SAC tanh-squashed, pooled joints) -> {png}")
        return 0
    if args.fresh:
        flags = {k: v for k, v in vars(args).items() if k.startswith("bounds.")}
        flags.update(algo=args.algo, minutes=1.0, **{"env.num_envs": args.num_envs})
        config = cfgmod.resolve(cfgmod.load_yaml(args.config) if args.config else None, flags, args.preset)
        config.offpolicy.learning_starts = 0  # the actor's own samples, not SB3's uniform warm-up
        raw, bounds = fresh_policy_actions(config, args.steps, args.num_envs)
        joint_names = get_contract(config.env.contract).joint_names
        report(
            raw,
            bounds,
            joint_names,
            out,
            f"fresh {args.algo}: exploration actions vs bounds ({bounds.method})",
            args.wide_ratio,
        )
        return 0
    from pretrain.rollout import collect_actions

    raw, contract, meta = collect_actions(args.bundle, args.steps, args.num_envs, deterministic=not args.stochastic)
    report(
        raw,
        contract.action_bounds,
        contract.joint_names,
        out,
        f"{meta.get('algo')} at {meta.get('num_timesteps')} steps: actions vs bounds ({contract.action_bounds.method})",
        args.wide_ratio,
    )
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "python -m pretrain actions")
