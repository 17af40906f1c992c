"""The bridge's QoS profiles, in one place: every publisher and subscription picks one of these.

* Sensor streams (joint states, IMU, odometry, foot contacts) and the velocity command: best effort,
  keep last 1. A late sample is worth nothing; only the newest one matters, and a reliable stream would
  queue and retransmit old ones.
* Joint commands: reliable, keep last 1 (a dropped command is a missed tick at 50 Hz; a queued one is stale).
* Status (safety status, driver diagnostics): reliable, transient local, keep last ``STATUS_DEPTH``. Every
  message is a transition that matters, and transitions can come back to back (``stand_up_done`` is followed
  by ``soft_start`` at the next tick, ``waiting_for_state`` by ``soft_start`` within ~10 ms): a depth-1 reader
  keeps only the newest unread sample, so whatever arrives before its executor takes the previous one silently
  replaces it (a single-threaded executor busy with the control tick is that late). A monitor that starts late
  gets the last few, the newest being the current status.
* Services (e-stop, reset) use rclpy's default service QoS (reliable).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)
"""Measurements and the joystick command: newest sample only."""

COMMAND = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1)
"""Joint position targets."""

STATUS_DEPTH = 10
"""Status messages kept per reader (unread) and per writer (for late subscribers and reliable resends)."""

STATUS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE,
    history=HistoryPolicy.KEEP_LAST,
    depth=STATUS_DEPTH,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Status transitions (latched: late subscribers get the last ``STATUS_DEPTH``, the newest being current)."""
