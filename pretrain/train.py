"""``python -m pretrain train`` / ``a1-pretrain``: train SAC, TQC or PPO on the A1 flat task.

Examples::

    a1-pretrain --algo sac --minutes 20                       # the CPU preset, embedded MuJoCo
    a1-pretrain --preset sac_raffin_a1 --sim isaaclab --minutes 10   # GPU workstation
    a1-pretrain --config my.yaml --offpolicy.batch_size 1024 --seed 3
    a1-pretrain --resume runs/sac-20261124-2010 --minutes 10  # continue: same buffer, same step count

A run directory holds ``config.yaml`` (resolved), ``curve.csv``, ``tb/`` (TensorBoard),
``checkpoints/step_<N>/`` bundles with a ``latest`` link (see ``a1_common/bundle.py``), and at the
end ``learning_curve.png``, ``reward_terms.png``, ``actions.png`` (actions taken vs bounds) and
``summary.json``. SIGINT/SIGTERM stop between steps and write a final checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from a1_common.algos.concurrent import UpdateWhileStepping, update_while_stepping
from a1_common.bundle import BundleError, CheckpointDir, load_bundle_files, replay_buffer_transitions
from a1_common.cli import ArgumentParser, UsageError, run_main
from pretrain import config as cfgmod
from pretrain.callbacks import ActionRecorder, TrainMonitor
from pretrain.curves import CurveWriter, plot_curves, plot_reward_terms, read_curve

SHORT_FLAGS = {  # short flag -> dotted config field
    "--algo": "algo",
    "--sim": "env.sim",
    "--num-envs": "env.num_envs",
    "--timesteps": "timesteps",
    "--minutes": "minutes",
    "--seed": "seed",
    "--out": "out",
}


# Budget and machine settings (they change how long and where a resumed run trains, not what it learns), and
# the curriculum switches: a policy learned on nominal dynamics continues under randomization and noise.
RESUME_MAY_CHANGE = (
    "timesteps", "minutes", "out", "torch_threads", "env.threads", "device", "checkpoint_minutes", "keep_checkpoints",
    "log_every_s", "offpolicy.concurrent_update", "offpolicy.fast_update",
    "env.randomize", "env.obs_noise", "env.action_latency_s", "offpolicy.mirror_fraction",
)  # fmt: skip


def _metavar(dotted: str, value: Any, kind: str) -> str:
    if dotted in cfgmod.CHOICES:
        return "{" + ",".join(cfgmod.CHOICES[dotted]) + "}"
    if "list" in kind:
        return "[X,...]"
    return kind.split("|")[0].strip().upper() or "VALUE"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="presets: "
        + ", ".join(cfgmod.PRESETS)
        + "\nValues are YAML: --offpolicy.net_arch [256,256]  --bounds.clip_to_targets false  --offpolicy.ent_coef "
        "auto_0.01.\nEvery field also takes dashes: --torch-threads 1 = --torch_threads 1."
        "\nErrors are one line; set A1_DEBUG=1 (or --debug) for the traceback.",
    )
    parser.add_argument("--config", help="YAML config file (any subset of the fields below)")
    parser.add_argument("--preset", choices=sorted(cfgmod.PRESETS), help="start from a named preset")
    parser.add_argument("--resume", help="bundle or run directory to continue (config comes from it)")
    parser.add_argument(
        "--overwrite", action="store_true", help="delete a non-empty --out directory first (default: refuse it)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    docs = cfgmod.field_help()
    kinds = {dotted: (value, kind) for dotted, value, kind in cfgmod.field_paths()}
    short = parser.add_argument_group("common fields (short flags)")
    for flag, dest in SHORT_FLAGS.items():
        value, kind = kinds[dest]
        text = f"{docs.get(dest, '')} (= --{dest}; default {value!r})".replace("%", "%%").strip()
        short.add_argument(
            flag,
            dest=dest,
            type=yaml.safe_load,
            default=argparse.SUPPRESS,
            metavar=_metavar(dest, value, kind),
            choices=cfgmod.CHOICES.get(dest),
            help=text,
        )
    group = parser.add_argument_group("config fields (YAML values; defaults before any preset)")
    for dotted, (value, kind) in kinds.items():
        if f"--{dotted}" in parser._option_string_actions:  # --algo, --seed, --preset, ...: already there
            continue
        flags = [f"--{dotted}"]
        if "_" in dotted:
            flags.insert(0, f"--{dotted.replace('_', '-')}")
        text = f"{docs.get(dotted, '')} (default {value!r})".replace("%", "%%").strip()
        group.add_argument(
            *flags,
            dest=dotted,
            type=yaml.safe_load,
            default=argparse.SUPPRESS,
            metavar=_metavar(dotted, value, kind),
            choices=cfgmod.CHOICES.get(dotted),
            help=text,
        )
    return parser


def parse(argv: list[str] | None, prog: str | None = None) -> tuple[cfgmod.TrainConfig, argparse.Namespace]:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    fixed = {"config", "preset", "resume", "overwrite", "no_progress", "print_config"}
    flags = {k: v for k, v in vars(args).items() if k not in fixed}
    try:
        config = _resolve(parser, args, flags)
    except (ValueError, OSError, yaml.YAMLError, BundleError) as exc:
        where = f"{args.config}: " if args.config and not args.resume and str(args.config) not in str(exc) else ""
        parser.error(f"{where}{' '.join(str(exc).split())}")
    if not config.timesteps and not config.minutes and not args.print_config:
        parser.error("set a budget: --timesteps N and/or --minutes M")
    return config, args


def _resolve(parser: argparse.ArgumentParser, args: argparse.Namespace, flags: dict[str, Any]) -> cfgmod.TrainConfig:
    if args.resume:
        saved = load_bundle_files(args.resume).config
        limits = {k: flags.pop(k) for k in list(flags) if k in RESUME_MAY_CHANGE}
        if flags:
            parser.error(
                f"--resume continues the saved config; only {', '.join(RESUME_MAY_CHANGE)} may change, got {flags}"
            )
        saved.update({"timesteps": 0, "minutes": 0.0})
        config = cfgmod.merge(cfgmod.from_dict(saved), cfgmod.unflatten(limits)).validate()
    else:
        file_doc = cfgmod.load_yaml(args.config) if args.config else None
        config = cfgmod.resolve(file_doc, flags, args.preset)
    return config


def default_out(config: cfgmod.TrainConfig) -> str:
    return str(Path("runs") / f"{config.algo}-{time.strftime('%Y%m%d-%H%M%S')}")


def prepare_run_dir(run_dir: Path, *, resume_run: Path | None = None, overwrite: bool = False) -> None:
    """Create ``run_dir``; refuse one that already holds files (another run's curve and checkpoints would mix
    with this one's) unless it is the run being resumed, or ``overwrite`` says to delete it first."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} is a file, not a run directory")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        same = resume_run is not None and run_dir.resolve() == resume_run.resolve()
        if overwrite:
            shutil.rmtree(run_dir)
        elif not same:
            raise UsageError(
                f"--out {run_dir} is not empty (another run's files); choose a new --out, continue that run with "
                f"--resume {run_dir}, or add --overwrite to delete it first"
            )
    run_dir.mkdir(parents=True, exist_ok=True)


def train(
    config: cfgmod.TrainConfig, *, resume: str | None = None, progress: bool = True, overwrite: bool = False
) -> dict[str, Any]:
    """Run one training call; returns the summary (also written to ``summary.json``).

    A non-empty run directory is refused (:func:`prepare_run_dir`) unless it is the one ``resume`` continues,
    or ``overwrite`` is set."""
    import torch

    from pretrain.factory import load_model, make_contract, make_env, make_model, obs_norm_of, wrap_obs_norm

    torch.set_num_threads(max(1, config.torch_threads))
    bundle = load_bundle_files(resume) if resume else None
    resume_run = None
    if bundle is not None:
        parent = bundle.path.parent
        resume_run = parent.parent if parent.name == "checkpoints" else parent / "resumed"
        config.out = config.out or str(resume_run)
    run_dir = Path(config.out or default_out(config))
    prepare_run_dir(run_dir, resume_run=resume_run, overwrite=overwrite)
    config.out = str(run_dir)
    config_yaml = config.to_yaml()
    (run_dir / "config.yaml").write_text(config_yaml)

    contract = make_contract(config)
    if bundle is not None:
        contract.require_same(bundle.contract, what=f"resumed bundle {bundle.path}")
    # A resumed run continues the learner exactly; its episode stream (commands, resets, pushes) is
    # seeded afresh from the step count so that it does not replay the episodes of the first call.
    env_seed = config.seed + (int(bundle.meta["num_timesteps"]) if bundle is not None else 0)
    concurrent = config.offpolicy.concurrent_update
    if concurrent and config.algo == "ppo":
        raise UsageError("--offpolicy.concurrent_update is for sac and tqc (PPO updates on its own rollouts)")
    raw_env = make_env(config, contract, seed=env_seed, background=concurrent)
    norm_env = wrap_obs_norm(raw_env, config, bundle.obs_norm if bundle else None)
    env = UpdateWhileStepping(norm_env) if concurrent else norm_env
    tb = str(run_dir / "tb")
    if bundle is not None:
        model = load_model(bundle, env, device=config.device, tensorboard_log=tb)
        time_offset = float(bundle.meta.get("train_time_s", 0.0))
        buffered = ""
        if config.algo != "ppo":
            buffered = f", replay buffer {replay_buffer_transitions(model.replay_buffer)}"
            model.fast_update = config.offpolicy.fast_update
            if not bundle.has_replay_buffer:  # e.g. the committed reference: refill before updating again
                model.learning_starts = model.num_timesteps + config.offpolicy.learning_starts
                buffered += f" (bundle has none: updates resume after {config.offpolicy.learning_starts} new steps)"
        print(f"resumed {bundle.path}: {model.num_timesteps} steps{buffered}")
    else:
        model = make_model(config, env, tensorboard_log=tb)
        time_offset = 0.0
    print(
        f"{config.algo} on {config.env.sim}, {env.num_envs} envs, contract {contract.name} {contract.hash}, "
        f"bounds {contract.action_bounds.method} -> {run_dir}"
    )

    if concurrent:
        update_while_stepping(model, env)
        print("concurrent update: each update runs while the simulator computes the next step")
    mirror = None
    if config.algo != "ppo" and config.offpolicy.mirror_fraction > 0:
        from pretrain.mirror import enable_mirror

        mirror = enable_mirror(model, contract, config.offpolicy.mirror_fraction)
        print(f"mirrored transitions: {config.offpolicy.mirror_fraction:.0%} of each batch")
    starts = int(getattr(model, "learning_starts", 0))
    if config.algo != "ppo" and config.timesteps and model.num_timesteps + config.timesteps <= starts:
        message = (f"the budget ({config.timesteps} steps) ends before learning_starts ({starts}): no gradient step "
                   f"will be taken; raise --timesteps or lower --offpolicy.learning_starts")  # fmt: skip
        print(f"warning: {message}", file=sys.stderr)

    ckpts = CheckpointDir(run_dir, keep=config.keep_checkpoints)
    curve = CurveWriter(run_dir / "curve.csv", [n for n, w in contract.rewards.items() if w != 0.0])
    recorder = ActionRecorder(seed=config.seed)
    t_start = time.perf_counter()

    def save_checkpoint() -> Path:
        train_time = time_offset + time.perf_counter() - t_start
        return ckpts.save(
            model,
            obs_norm_of(norm_env, contract.obs_dim),
            contract,
            config_yaml,
            algo=config.algo,
            with_replay_buffer=config.save_replay_buffer,
            extra_meta={"train_time_s": round(train_time, 2), "run_dir": str(run_dir)},
        )

    monitor = TrainMonitor(
        curve,
        total_timesteps=config.timesteps,
        minutes=config.minutes,
        log_every_s=config.log_every_s,
        checkpoint_every_s=config.checkpoint_minutes * 60,
        save_checkpoint=save_checkpoint,
        time_offset_s=time_offset,
        progress=progress,
        recorder=recorder,
    )
    try:
        try:
            model.learn(
                total_timesteps=10**12, callback=monitor, reset_num_timesteps=bundle is None, tb_log_name=config.algo
            )
        finally:
            curve.close()
        final = save_checkpoint()
        summary = finish(run_dir, config, contract, recorder, monitor, final)
        if mirror is not None:
            summary["mirror_counts"] = dict(mirror.counts)
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    finally:
        monitor.restore_signals()
    env.close()
    return summary


def finish(
    run_dir: Path,
    config: cfgmod.TrainConfig,
    contract: Any,
    recorder: ActionRecorder,
    monitor: TrainMonitor,
    final: Path,
) -> dict[str, Any]:
    from pretrain import action_diagnostics as diag

    curve = read_curve(run_dir / "curve.csv")
    if curve:
        plot_curves({config.algo: curve}, run_dir / "learning_curve.png", title=f"{config.algo} on {config.env.sim}")
        plot_reward_terms(curve, run_dir / "reward_terms.png")
    summary: dict[str, Any] = {
        "final_bundle": str(final),
        "stop_reason": monitor.stop_reason,
        "num_timesteps": int(monitor.model.num_timesteps),
        "last": monitor.last_row,
    }
    actions = recorder.sample()
    if len(actions) >= 100:
        raw = contract.action_bounds.to_raw(actions)
        usage = diag.bounds_usage(raw, contract.action_bounds, joint_names=contract.joint_names)
        diag.plot_action_histograms(
            raw,
            contract.action_bounds,
            contract.joint_names,
            run_dir / "actions.png",
            title=f"{config.algo}: actions taken vs bounds ({contract.action_bounds.method})",
        )
        summary["action_usage"] = usage
        message = diag.bounds_warning(usage, config.bounds_warning_ratio)
        if message:
            warnings.warn(f"action bounds: {message}", stacklevel=1)
            summary["bounds_warning"] = message
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    print(f"done ({monitor.stop_reason}): {summary['num_timesteps']} steps; bundle {final}")
    return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _main(argv: list[str] | None = None, prog: str | None = "a1-pretrain") -> int:
    config, args = parse(sys.argv[1:] if argv is None else argv, prog)
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    train(config, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    return 0


def main(argv: list[str] | None = None, prog: str | None = "a1-pretrain") -> int:
    return run_main(lambda args: _main(args, prog), argv, prog or "a1-pretrain")


if __name__ == "__main__":
    raise SystemExit(main())
