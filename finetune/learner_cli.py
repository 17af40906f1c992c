"""``a1-finetune-learner`` / ``python -m finetune learner``: the command line of :class:`finetune.learner.Learner`
(every :class:`~finetune.learner_config.LearnerConfig` field is a flag, with its docstring as help)."""

from __future__ import annotations

import argparse
import json

from a1_common.cli import ArgumentParser, UsageError, run_main
from finetune.learner import Learner
from finetune.learner_config import LearnerConfig


def build_parser() -> argparse.ArgumentParser:
    from finetune import learner

    parser = ArgumentParser(prog="a1-finetune-learner", description=learner.__doc__.split("\n\n")[0])
    parser.add_argument("--resume", help="fine-tuning run directory (or checkpoint) to continue exactly")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from a1_common.cli import field_docs

    docs = field_docs(LearnerConfig)
    for name, f in LearnerConfig.__dataclass_fields__.items():
        default, text = f.default, docs.get(name, "").replace("%", "%%")
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"{text} (default: {default})")
    return parser


def _main(argv: list[str] | None = None) -> int:
    args = parser_args = build_parser().parse_args(argv)
    config = LearnerConfig(**{name: getattr(parser_args, name) for name in LearnerConfig.__dataclass_fields__})
    if not args.resume and not config.bundle:
        raise UsageError("--bundle (pretraining bundle) or --resume (fine-tuning run) is required")
    problems = config.problems()
    if problems:
        raise UsageError("; ".join(problems))
    learner = Learner(config, resume=args.resume, progress=not args.no_progress)
    summary = learner.run()
    print(json.dumps(summary), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "a1-finetune-learner")


if __name__ == "__main__":
    raise SystemExit(main())
