"""The A1 driver's value types: :class:`DriverConfig` (addresses, rate, timeouts, guards), :class:`DriverStatus`
and :class:`RobotState` (one LowState in contract order). The loop itself is :mod:`robot_bridge.a1_driver`.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

import numpy as np

from robot_bridge.realtime import DEFAULT_PRIORITY, check_priority
from robot_bridge.unitree_protocol import LOCAL_PORT, ROBOT_IP, ROBOT_PORT, LowState


@dataclass(frozen=True)
class DriverConfig:
    """Where the robot is, how fast to talk to it, and the guards. Contract-derived limits: 0 = the contract's."""

    robot_ip: str = ROBOT_IP
    """The robot's low-level controller (SDK ``UDP_SERVER_IP_BASIC``)."""
    robot_port: int = ROBOT_PORT
    local_ip: str = "192.168.123.162"
    """This PC's address on the robot's network (the SDK docs' PC address); sockets bind explicitly."""
    local_port: int = LOCAL_PORT
    """0 picks a free port (tests)."""
    rate_hz: float = 500.0
    """LowCmd packets per second."""
    command_timeout_s: float = 0.1
    """Joint targets older than this (s): damping. 5 periods of a 50 Hz policy."""
    state_timeout_s: float = 0.1
    """No valid LowState for this long (s): damping (the robot or the link is gone)."""
    dry_run: bool = True
    """Build every command, send none (``would_send`` counts them)."""
    use_soft_limits: bool = True
    """Clamp targets to the contract's soft (True) or hard (False) joint limits."""
    torque_limit_nm: float = 0.0
    """Largest estimated motor torque (N m) before ``q*`` is moved; 0 = the contract's effort limit."""
    power_limit_w: float = 1000.0
    """Largest estimated mechanical power, sum over motors of ``|tau dq|`` (W)."""
    guard_persist_s: float = 0.1
    """Guard hits (torque clipped or power exceeded) in every period for this long (s) latch damping."""
    damping_kd: float = 2.0
    """Kd of the damping command (N m s/rad); Kp is 0."""
    state_period_ticks: int = 2000
    """Expected ``tick`` step between LowStates (500 Hz in microseconds, the header's unit; not verified)."""
    realtime_priority: int = DEFAULT_PRIORITY
    """SCHED_FIFO priority (1-99) of the UDP loop's thread, so that no ordinary process delays a period; 0:
    ordinary scheduling. Needs root, CAP_SYS_NICE or an rtprio limit, else ordinary scheduling and a warning."""

    def __post_init__(self) -> None:
        for name in ("robot_ip", "local_ip"):
            try:
                ipaddress.IPv4Address(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"DriverConfig.{name}: {getattr(self, name)!r} is not an IPv4 address") from exc
        for name in ("robot_port", "local_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"DriverConfig.{name}: {getattr(self, name)} is not a UDP port")
        for name in ("rate_hz", "command_timeout_s", "state_timeout_s", "power_limit_w", "damping_kd",
                     "state_period_ticks"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"DriverConfig.{name} must be > 0, got {getattr(self, name)}")
        check_priority(self.realtime_priority, "DriverConfig.realtime_priority")
        if self.torque_limit_nm < 0 or self.guard_persist_s < 0:
            raise ValueError("DriverConfig.torque_limit_nm and guard_persist_s must be >= 0")


class DriverStatus(enum.Enum):
    RUNNING = "running"
    WAITING_FOR_STATE = "waiting_for_state"
    WAITING_FOR_COMMAND = "waiting_for_command"
    STALE_COMMAND = "stale_command"
    STALE_STATE = "stale_state"
    GUARD = "guard"
    """Latched: the torque/power guard hit persistently; :meth:`A1Driver.clear_fault` clears it."""


@dataclass(frozen=True)
class RobotState:
    """One LowState in contract order and SI units (except the raw foot force counts)."""

    stamp: float
    """time.monotonic() at reception (s)."""
    tick: int
    q: np.ndarray
    dq: np.ndarray
    tau_est: np.ndarray
    quaternion_wxyz: np.ndarray
    gyroscope: np.ndarray
    """rad/s, trunk (IMU) frame."""
    accelerometer: np.ndarray
    """Specific force, m/s^2, trunk (IMU) frame."""
    foot_force_raw: np.ndarray
    """The four raw ``footForce`` counts (SDK leg order FR, FL, RR, RL; see ``unitree_mapping.foot_slots``)."""
    low_state: LowState
