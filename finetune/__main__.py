"""``python -m finetune {pipeline,learner,actor,keys}``: see each module's docs."""

from __future__ import annotations

import sys
from pathlib import Path

COMMANDS = {
    "pipeline": ("finetune.pipeline", "the whole pipeline on the emulated A1, with a report"),
    "learner": ("finetune.learner_cli", "the learner (workstation): keeps training the bundle's model"),
    "actor": ("finetune.emulated", "the actor on the emulated A1 (emulator + policy node in fine-tuning mode)"),
    "keys": ("finetune.keys", "create a CurveZMQ key pair"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "a1-finetune" if Path(sys.argv[0]).name == "a1-finetune" else "python -m finetune"
    if not argv or argv[0] not in COMMANDS:
        helping = bool(argv) and argv[0] in ("-h", "--help")
        out = sys.stdout if helping else sys.stderr
        print(f"usage: {prog} {{{','.join(COMMANDS)}}} ...\n", file=out)
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<9} {text}", file=out)
        if argv and not helping:
            print(f"\n{prog}: error: unknown command {argv[0]!r}", file=out)
        return 0 if helping else 2
    import importlib

    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
