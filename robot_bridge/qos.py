"""The bridge's QoS profiles, in one place: every publisher and subscription picks one of these.

* Sensor streams (joint states, IMU, odometry, foot contacts) and the velocity command: best effort,
  keep last 1. A late sample is worth nothing; only the newest one matters, and a reliable stream would
  queue and retransmit old ones.
* Joint commands: reliable, keep last 1 (a dropped command is a missed tick at 50 Hz; a queued one is stale).
* Safety status: reliable, transient local, keep last 1, so a monitor that starts late still gets the
  current status.
* Services (e-stop, reset) use rclpy's default service QoS (reliable).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)
"""Measurements and the joystick command: newest sample only."""

COMMAND = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1)
"""Joint position targets."""

STATUS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE,
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Safety status (latched: late subscribers get the last one)."""
