"""Training processes run N at a time, one core each, each with its own log file: how the benchmarks
(``time_to_walk``, ``forward_ablation``, ``bounds_ablation``) and ``tune --check-seeds`` share a 2-core box."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Added to each job's environment: BLAS and OpenMP pools of one thread (torch and MuJoCo get theirs from flags)."""


@dataclass(frozen=True)
class Job:
    name: str
    cmd: Sequence[str]
    log: Path
    """stdout and stderr of the process (its folder is created)."""
    cwd: Path | None = None


def run_jobs(
    jobs: Sequence[Job],
    parallel: int,
    *,
    poll_s: float = 2.0,
    on_done: Callable[[Job, int, float], None] | None = None,
    on_poll: Callable[[Job], None] | None = None,
    poll_every_s: float = 30.0,
) -> dict[str, int]:
    """Run ``jobs`` in order, at most ``parallel`` at once; return each job's exit status by name.

    ``on_done(job, status, minutes since the first start)`` when a job ends; ``on_poll(job)`` for each running job
    every ``poll_every_s`` (progress lines). On Ctrl-C the running jobs stop too (a terminal's Ctrl-C reaches them
    already; one still running 2 s later gets SIGINT: the trainers write their bundles), then it propagates."""
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    pending, running, codes = list(jobs), [], {}
    env = {**os.environ, **ONE_CORE}
    t0 = last_poll = time.monotonic()
    try:
        while pending or running:
            while pending and len(running) < parallel:
                job = pending.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "w") as log:
                    proc = subprocess.Popen(
                        list(job.cmd), cwd=job.cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=env,
                    )  # fmt: skip
                running.append((job, proc))
            time.sleep(poll_s)
            if on_poll and time.monotonic() - last_poll >= poll_every_s:
                last_poll = time.monotonic()
                for job, _ in running:
                    on_poll(job)
            for item in list(running):
                job, proc = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                codes[job.name] = proc.returncode
                if on_done:
                    on_done(job, proc.returncode, (time.monotonic() - t0) / 60.0)
    except KeyboardInterrupt:
        for _, proc in running:
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        for _, proc in running:
            proc.wait()
        raise
    return codes
