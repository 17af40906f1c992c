"""Progress bars that log lines do not break.

The ROS 2 nodes log from C (rcutils writes ``[INFO] [...] [policy_node]: ...`` straight to file descriptor 2, past
``sys.stderr``), so ``tqdm.write`` cannot be used for them and each line used to land in the middle of the bar.
:func:`progress` therefore reads file descriptor 2 through a pipe while its bar is shown and writes each complete
line above the bar (``tqdm.write``); the bar itself draws on the original standard error. Python's own
``logging``/``warnings`` output and ``print(..., file=sys.stderr)`` take the same way.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO


@contextlib.contextmanager
def stderr_above_bars(join_timeout_s: float = 5.0) -> Iterator[TextIO]:
    """Within the block, lines written to file descriptor 2 are written above any tqdm bar drawn on the stream
    this yields (the original standard error). On exit, file descriptor 2 is restored and the lines still in the
    pipe are written out first."""
    sys.stderr.flush()
    saved = os.dup(2)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding=encoding, errors="replace")
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, terminal, saved), daemon=True, name="stderr-above-bars")
    pump.start()
    # Python's own stderr through file descriptor 2 too (sys.stderr need not write there: a test runner's capture)
    python_stderr = sys.stderr
    fd2 = open(2, "wb", closefd=False)  # noqa: SIM115 (closed with the wrapper, which leaves fd 2 open)
    sys.stderr = io.TextIOWrapper(fd2, encoding=encoding, errors="replace", line_buffering=True)
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        sys.stderr = python_stderr
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump writes what is left, then sees EOF
        pump.join(join_timeout_s)
        if not pump.is_alive():  # else a child process still holds the write end: the pump keeps both
            terminal.close()
            os.close(saved)


def _pump(read_end: int, terminal: TextIO, raw_fd: int) -> None:
    from tqdm import tqdm

    with open(read_end, "rb") as pipe:
        for line in pipe:
            try:
                tqdm.write(line.decode(errors="replace").rstrip("\r\n"), file=terminal)
            except Exception:  # the pipe must keep draining: a full pipe would block every writer (the ROS nodes)
                with contextlib.suppress(OSError):
                    os.write(raw_fd, line)


@contextlib.contextmanager
def progress(desc: str, total: int, unit: str) -> Iterator[Callable[[int, dict | None], None]]:
    """A tqdm bar to ``total`` with log lines above it (:func:`stderr_above_bars`); yields ``update(value,
    status=None)``, which sets the bar to ``value`` and, given an actor status (``run_actor``'s ``on_progress``),
    shows its episodes, last return, policy version and transitions sent."""
    from tqdm import tqdm

    with stderr_above_bars() as terminal:
        bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5, leave=False, file=terminal)

        def update(value: int, status: dict | None = None) -> None:
            bar.n = min(int(value), total)
            if status:
                bar.set_postfix(
                    episodes=status.get("episodes"),
                    ret=status.get("last_return"),
                    policy=status.get("policy_version"),
                    sent=status.get("transitions"),
                    refresh=False,
                )
            bar.refresh()

        try:
            yield update
        finally:
            bar.close()
