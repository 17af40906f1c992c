"""What every console script of the project does the same way: short argparse errors, no abbreviated flags,
and user errors printed as one line on stderr instead of a traceback.

    from a1_common.cli import ArgumentParser, run_main

    def main(argv=None):
        return run_main(_main, argv, prog="a1-export")

``run_main`` turns an exception escaping the command into ``<prog>: error: <message>`` on stderr and exit
status 1 (2 for :class:`UsageError`); the traceback is printed only with ``A1_DEBUG=1`` in the environment
or ``--debug`` on the command line. Ctrl-C exits with 130 and one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

DEBUG_ENV = "A1_DEBUG"


class UsageError(Exception):
    """A wrong flag or flag value that argparse could not catch: exit status 2, like argparse's own errors."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` without prefix matching of long flags (``--timestep`` is not
    ``--timesteps``) and with a two-line error instead of the whole usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def debug_enabled(argv: Sequence[str] | None = None) -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0") or "--debug" in (argv or ())


PROJECT_PACKAGES = ("a1_common", "a1_contract", "pretrain", "deploy", "robot_bridge", "finetune")


def is_user_error(exc: BaseException) -> bool:
    """An error whose message is written for the user: the project's own exception classes (BundleError,
    PolicyFileError, ContractError, ...), bad values, missing files and keys. Anything else may be a bug."""
    return isinstance(exc, (ValueError, OSError, LookupError, UsageError)) or type(exc).__module__.split(".")[0] in (
        PROJECT_PACKAGES
    )


def one_line(exc: BaseException) -> str:
    """The exception's message on one line; its type name when the message alone would not say what failed."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KeyError):  # str(KeyError('x')) is "'x'"
        text = f"missing key {text}"
    if not text or not is_user_error(exc):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text


def run_main(func: Callable[[list[str]], int | None], argv: Sequence[str] | None, prog: str) -> int:
    """Run ``func(argv)`` and return its exit status; errors become one line on stderr (see the module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != "--debug"]
    try:
        return int(func(argv) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BrokenPipeError:  # `cmd | head`: the reader left; nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 (the point: one line for any error reaching the user)
        if debug:
            raise
        status = 2 if isinstance(exc, UsageError) else 1
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        if not is_user_error(exc):
            print(f"{prog}: (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return status


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal under it), whitespace-collapsed, read from the class source:
    what CLIs and ROS parameter descriptions show."""
    import ast
    import inspect
    import textwrap

    class_def = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(class_def, ast.ClassDef)
    body = class_def.body
    docs = {}
    for field_node, doc in zip(body, body[1:], strict=False):
        if (
            isinstance(field_node, ast.AnnAssign)
            and isinstance(field_node.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
        ):
            docs[field_node.target.id] = " ".join(str(doc.value.value).split())
    return docs
