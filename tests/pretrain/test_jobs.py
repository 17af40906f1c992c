"""``pretrain.jobs.run_jobs``: real processes, at most N at once, each writing its own log, exit codes by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pretrain.jobs import Job, run_jobs

# Each job appends its start and end time to a shared file, then exits with its own status.
SCRIPT = """import sys, time
open(sys.argv[1], "a").write(f"start {time.monotonic()}\\n")
print("hello from", sys.argv[2])
time.sleep(0.5)
open(sys.argv[1], "a").write(f"end {time.monotonic()}\\n")
sys.exit(int(sys.argv[3]))
"""


def _concurrency(trace: Path) -> int:
    """The most jobs running at once, from their start and end times."""
    events = []
    for line in trace.read_text().splitlines():
        kind, t = line.split()
        events.append((float(t), 1 if kind == "start" else -1))
    events.sort()
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("parallel", [1, 2])
def test_jobs_run_at_most_parallel_at_once_with_their_own_logs_and_statuses(tmp_path: Path, parallel: int) -> None:
    trace = tmp_path / "trace"
    jobs = [
        Job(
            f"job{i}", [sys.executable, "-c", SCRIPT, str(trace), f"job{i}", str(i % 2)], tmp_path / "logs" / f"{i}.log"
        )
        for i in range(4)
    ]
    done = []
    codes = run_jobs(jobs, parallel, poll_s=0.05, on_done=lambda job, code, minutes: done.append((job.name, code)))
    assert codes == {"job0": 0, "job1": 1, "job2": 0, "job3": 1}
    assert sorted(done) == sorted(codes.items())
    assert _concurrency(trace) == parallel
    for i in range(4):
        assert (tmp_path / "logs" / f"{i}.log").read_text().strip() == f"hello from job{i}"


def test_parallel_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parallel must be >= 1"):
        run_jobs([], 0)
