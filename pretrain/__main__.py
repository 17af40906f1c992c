"""``python -m pretrain SUBCOMMAND [args]``: dispatch to the pretraining tools.

Each subcommand is a module with ``main(argv, prog=...)``; add new ones to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with main(argv, prog), one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pretrain.demo", "short MuJoCo run of A1 robots holding the default pose; writes video, images, plots"),
    "train": ("pretrain.train", "train SAC, TQC or PPO (presets, YAML config, checkpoints, --resume)"),
    "evaluate": ("pretrain.evaluate", "velocity-command grid, nominal and training conditions: tracking, falls"),
    "play": ("pretrain.play", "watch a policy: video of one robot following a command sequence, velocities printed"),
    "walk": ("pretrain.rollout", "does a bundle's policy walk? fixed forward command, falls and tracking error"),
    "actions": ("pretrain.diagnose", "plot the actions a policy takes against its bounds, and initial distributions"),
    "reference": ("pretrain.reference", "copy a bundle without its replay buffer as the reference policy; walk check"),
    "bounds": ("pretrain.bounds", "measure action bounds (percentiles) from a trained PPO bundle"),
    "tune": ("pretrain.tune", "Optuna search of SAC/TQC hyperparameters for a wall-clock budget (SQLite/PostgreSQL)"),
}


def _usage() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pretrain",
        description="A1 pretraining tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands:\n"
        + "\n".join(f"  {name:<12}{text}" for name, (_, text) in SUBCOMMANDS.items())
        + "\n\nRun 'python -m pretrain SUBCOMMAND --help' for a subcommand's options.",
    )
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS), help="what to run")
    parser.add_argument("args", nargs="*", help="the subcommand's arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser = _usage()
        if argv and argv[0] in ("-h", "--help"):
            parser.print_help()
            return 0
        parser.print_help(sys.stderr)
        if argv:
            print(f"\nunknown subcommand {argv[0]!r}", file=sys.stderr)
        return 2
    module_name, _ = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    return int(module.main(argv[1:], prog=f"python -m pretrain {argv[0]}") or 0)


if __name__ == "__main__":
    raise SystemExit(main())
