"""Real-time scheduling for a control thread: ``SCHED_FIFO``, so that no ordinary process preempts a tick.

Measured on this 2-core VM (``benchmarks/bridge_latency.py``): most of the policy node's tail latency was not its
own work but preemption. Publishing the joint command wakes the subscriber (the driver or the emulated A1); under
Linux's fair scheduler the woken process often runs at once on the publisher's CPU, so ``publish`` returned
after the subscriber's callback: 0.16 ms median, 0.7 ms p90, 1.2-2.7 ms p99. A thread under ``SCHED_FIFO`` is
not preempted by ordinary (``SCHED_OTHER``) processes: ``publish`` 0.10 ms median, 0.15 ms p99 with a training
on the other core, and the 50 Hz timer's jitter p99 fell from 3.3 ms to 0.4 ms. ``ros2_control`` runs its
control thread the same way (priority 50).

Linux only; root, ``CAP_SYS_NICE`` or an ``rtprio`` limit (``/etc/security/limits.conf``: ``@robot - rtprio
98``) is needed. Without them the thread keeps ordinary scheduling and the caller is told why, in one line. The
kernel's real-time throttling (``/proc/sys/kernel/sched_rt_runtime_us``, 95% by default) keeps a runaway
real-time thread from starving the machine.
"""

from __future__ import annotations

import os

MAX_PRIORITY = 99
DEFAULT_PRIORITY = 50
"""The control threads' default (policy node, A1 driver), as ros2_control's."""


def check_priority(priority: int, name: str = "realtime_priority") -> int:
    """``priority`` if it is 0 (ordinary scheduling) or a SCHED_FIFO priority 1-99; else ValueError naming ``name``."""
    if isinstance(priority, bool) or int(priority) != priority or not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"{name} must be 0 (ordinary scheduling) or a SCHED_FIFO priority 1-99, got {priority!r}")
    return int(priority)


def make_thread_realtime(priority: int, native_id: int = 0) -> str:
    """Put a thread (``threading.Thread.native_id``; 0: the calling one) under ``SCHED_FIFO`` at ``priority`` (0:
    leave it as it is).

    Returns ``""`` when done (or nothing to do), else why not (one line; the thread is unchanged)."""
    if check_priority(priority) == 0:
        return ""
    if not hasattr(os, "sched_setscheduler"):
        return "SCHED_FIFO is not available on this platform (Linux only)"
    try:
        os.sched_setscheduler(native_id, os.SCHED_FIFO, os.sched_param(priority))  # Linux: a thread id
    except PermissionError:
        return (f"SCHED_FIFO priority {priority} not permitted for this user: run as root, grant CAP_SYS_NICE or "
                "an rtprio limit (/etc/security/limits.conf), or set realtime_priority 0")  # fmt: skip
    except OSError as exc:
        return f"SCHED_FIFO priority {priority} refused: {exc}"
    return ""


def thread_policy(native_id: int) -> str:
    """The scheduling policy of a thread (``threading.Thread.native_id``): ``"fifo"``, ``"other"``, ..."""
    names = {os.SCHED_FIFO: "fifo", os.SCHED_OTHER: "other", os.SCHED_RR: "rr"}
    policy = os.sched_getscheduler(native_id)
    return names.get(policy, str(policy))
