"""The real A1's low-level driver without ROS: a UDP send/receive loop in its own thread, with guards.

Every period (``rate_hz``, 500 Hz as in every Unitree example) the loop

1. drains the socket and keeps the newest valid ``LowState`` from the robot's address (length, CRC and level
   errors are counted by :class:`~robot_bridge.unitree_codec.ProtocolStats` and change nothing; a ``tick``
   that is not newer is a late packet and is dropped; gaps in ``tick`` count as lost packets);
2. builds one ``LowCmd``: the newest joint targets (contract order, from :meth:`A1Driver.set_targets`) ->
   clamp to the contract's position limits -> torque guard (estimated ``kp (q* - q) - kd dq`` per motor beyond
   ``torque_limit`` moves ``q*`` so that it is at the limit; mechanical power ``sum |tau dq|`` beyond
   ``power_limit_w`` is counted; guard hits in consecutive periods for ``guard_persist_s`` latch damping, in
   the spirit of the SDK's ``PositionLimit`` / ``PowerProtect``) -> ``targets_to_motor_cmd``;
3. sends it, or with ``dry_run`` (the default) only counts it in ``would_send``: not one byte leaves.

Damping (``damping_cmd``: Kp = 0, Kd = ``damping_kd``) replaces the targets when there is no state yet, no
command yet, the newest targets are older than ``command_timeout_s``, the newest state older than
``state_timeout_s``, or the guard latched (until :meth:`A1Driver.clear_fault`). Each new state goes to
``on_state`` (in the driver's thread) as a :class:`~robot_bridge.a1_driver_types.RobotState` in contract order.

Try it against the emulator (two shells)::

    python -m robot_bridge.emulator_udp --bind 127.0.0.1 8007
    python -m robot_bridge.a1_driver --robot 127.0.0.1 8007 --local 127.0.0.1 0 --send --seconds 3

(a link check: it sends damping only and prints the counters).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from a1_common.cli import ArgumentParser, run_main
from a1_contract import TaskContract, get_contract
from robot_bridge.a1_driver_types import DriverConfig, DriverStatus, RobotState
from robot_bridge.realtime import make_thread_realtime
from robot_bridge.unitree_codec import ProtocolError, ProtocolStats, pack_low_cmd_fast, unpack_low_state_fast
from robot_bridge.unitree_mapping import (
    damping_cmd,
    imu_from_state,
    is_finite_cmd,
    motor_state_to_contract,
    targets_to_motor_cmd,
)
from robot_bridge.unitree_protocol import LOCAL_PORT, ROBOT_IP, ROBOT_PORT, LowCmd, LowState

TICK_MODULUS = 1 << 32


class A1Driver:
    """The UDP loop (see the module docs). ``start()`` binds and starts the thread; ``stop()`` ends both."""

    def __init__(
        self,
        config: DriverConfig,
        contract: TaskContract | None = None,
        on_state: Callable[[RobotState], None] | None = None,
    ) -> None:
        self.config = config
        self.contract = contract or get_contract()
        c = self.contract
        limits = c.soft_joint_pos_limits() if config.use_soft_limits else np.asarray(c.joint_pos_limits)
        self.position_limits = np.asarray(limits, dtype=np.float64)
        self.kp, self.kd = np.asarray(c.kp, np.float64), np.asarray(c.kd, np.float64)
        self.torque_limit = (
            np.full(c.num_joints, config.torque_limit_nm) if config.torque_limit_nm else np.asarray(c.effort_limit)
        )
        self._persist_periods = max(1, math.ceil(config.guard_persist_s * config.rate_hz))
        self._on_state = on_state
        self._damping = damping_cmd(config.damping_kd, contract=c)
        self.stats = ProtocolStats()
        self.counters: dict[str, int] = dict.fromkeys(
            ("sent", "would_send", "send_errors", "received", "foreign_packets", "late_packets", "lost",
             "missed_periods", "overruns", "position_clips", "torque_clips", "power_events", "guard_events",
             "guard_trips", "damping_periods", "rejected_targets", "callback_errors"), 0
        )  # fmt: skip
        self._targets: tuple[np.ndarray, float] | None = None
        self._targets_lock = threading.Lock()
        self.state: RobotState | None = None
        """The newest valid state."""
        self.status, self.reason = DriverStatus.WAITING_FOR_STATE, "no state from the robot yet"
        self.status_changes: deque[tuple[float, DriverStatus, str]] = deque(maxlen=1000)
        """(monotonic time, status, reason) at every change, for a node to publish."""
        self.status_changes.append((time.monotonic(), self.status, self.reason))
        self.last_command: LowCmd = self._damping
        """The command built in the last period (sent unless dry-run)."""
        self.last_power_w = 0.0
        self._guard_run = 0
        self._fault: str | None = None
        self._state_this_period = False
        self._sock: socket.socket | None = None
        self._robot_address = (config.robot_ip, config.robot_port)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.realtime_refused = ""
        """Why the loop's thread kept ordinary scheduling ('' when it runs under SCHED_FIFO or was not asked to)."""

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> A1Driver:
        if self._thread is not None:
            raise RuntimeError("A1Driver.start: already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.config.local_ip, self.config.local_port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"A1Driver: cannot bind {self.config.local_ip}:{self.config.local_port} ({exc}); is this PC on the "
                "robot's network with that address (DriverConfig.local_ip)?"
            ) from exc
        sock.setblocking(False)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="a1_driver", daemon=True)
        self._thread.start()
        self.realtime_refused = make_thread_realtime(self.config.realtime_priority, self._thread.native_id)
        return self

    def stop(self) -> None:
        """Stop the loop and close the socket. Idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> A1Driver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def local_address(self) -> tuple[str, int]:
        if self._sock is None:
            raise RuntimeError("A1Driver: not started")
        return self._sock.getsockname()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- inputs ---------------------------------------------------------------------------------------------
    def set_targets(self, targets: np.ndarray, stamp: float | None = None) -> None:
        """Joint position targets (rad, contract order) received at ``stamp`` (time.monotonic(); None = now).

        Raises ValueError (and counts ``rejected_targets``) for a wrong length or a non-finite value; the
        previous targets then stay (and go stale).
        """
        values = np.asarray(targets, dtype=np.float64)
        if values.shape != (self.contract.num_joints,) or not np.isfinite(values).all():
            self.counters["rejected_targets"] += 1
            raise ValueError(f"joint targets must be {self.contract.num_joints} finite values, got {values.tolist()}")
        with self._targets_lock:
            self._targets = (values.copy(), time.monotonic() if stamp is None else float(stamp))

    def clear_fault(self) -> str | None:
        """Clear a latched guard fault; returns what it was (None if there was none)."""
        fault, self._fault, self._guard_run = self._fault, None, 0
        return fault

    def _scheduling(self) -> str:
        if self._thread is None:
            return "not started"
        if self.realtime_refused or not self.config.realtime_priority:
            return f"ordinary ({self.realtime_refused or 'realtime_priority 0'})"
        return f"SCHED_FIFO {self.config.realtime_priority}"

    def snapshot(self) -> dict[str, object]:
        """Counters, protocol errors and status as one JSON-ready dict (the node's diagnostics)."""
        return {
            **self.counters,
            "crc_errors": self.stats.crc_errors,
            "length_errors": self.stats.short_packets,
            "level_errors": self.stats.wrong_level,
            "valid_states": self.stats.ok,
            "power_w": round(self.last_power_w, 1),
            "status": self.status.value,
            "reason": self.reason,
            "dry_run": self.config.dry_run,
            "scheduling": self._scheduling(),
        }

    # ---- the loop -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / self.config.rate_hz
        next_wake = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - next_wake > period:
                self.counters["overruns"] += 1
                next_wake = now
            self._receive(now)
            self._send(self._decide(now))
            next_wake += period
            self._stop.wait(max(0.0, next_wake - time.monotonic()))

    def _receive(self, now: float) -> None:
        newest = None
        while True:
            try:
                data, sender = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # an ICMP error surfaced on the socket; there is nothing to read
                break
            if sender != self._robot_address:
                self.counters["foreign_packets"] += 1
                continue
            self.counters["received"] += 1
            try:
                newest = self._accept(unpack_low_state_fast(data, self.stats), now) or newest
            except ProtocolError:
                continue  # counted in self.stats; the state is unchanged
        if self.state is not None and newest is None and now - self.state.stamp > 0.5 / self.config.rate_hz:
            self.counters["missed_periods"] += 1
        if newest is not None and self._on_state is not None:
            try:
                self._on_state(newest)
            except Exception:  # the node's bug must not stop the loop
                self.counters["callback_errors"] += 1

    def _accept(self, low: LowState, now: float) -> RobotState | None:
        previous = self.state
        if previous is not None and now - previous.stamp <= self.config.state_timeout_s:
            step = (low.tick - previous.tick) % TICK_MODULUS
            if step == 0 or step >= TICK_MODULUS // 2:  # not newer than what we have: out of order or repeated
                self.counters["late_packets"] += 1
                return None
            self.counters["lost"] += max(0, round(step / self.config.state_period_ticks) - 1)
        # (after a silence longer than the state timeout any tick is accepted: the robot may have restarted)
        q, dq, tau = motor_state_to_contract(low, self.contract)
        quat, gyro, acc = imu_from_state(low)
        self.state = RobotState(now, int(low.tick), q, dq, tau, quat, gyro, acc, low.foot_force.copy(), low)
        return self.state

    def _decide(self, now: float) -> LowCmd:
        with self._targets_lock:
            targets = self._targets
        state = self.state
        if state is None:
            status, reason = DriverStatus.WAITING_FOR_STATE, "no state from the robot yet"
        elif now - state.stamp > self.config.state_timeout_s:
            status, reason = DriverStatus.STALE_STATE, f"no valid LowState for {now - state.stamp:.3f} s"
        elif self._fault is not None:
            status, reason = DriverStatus.GUARD, self._fault
        elif targets is None:
            status, reason = DriverStatus.WAITING_FOR_COMMAND, "no joint targets yet"
        elif now - targets[1] > self.config.command_timeout_s:
            status, reason = DriverStatus.STALE_COMMAND, f"joint targets {now - targets[1]:.3f} s old"
        else:
            status, reason = DriverStatus.RUNNING, "sending joint targets"
        command = self._damping
        if status is DriverStatus.RUNNING:
            command = self._guarded(targets[0], state)
            if self._fault is not None:  # tripped in this very period
                status, reason, command = DriverStatus.GUARD, self._fault, self._damping
        else:
            self._guard_run = 0
        if status is not DriverStatus.RUNNING:
            self.counters["damping_periods"] += 1
        if status is not self.status:
            self.status, self.reason = status, reason
            self.status_changes.append((now, status, reason))
        return command

    def _guarded(self, targets: np.ndarray, state: RobotState) -> LowCmd:
        low, high = self.position_limits[:, 0], self.position_limits[:, 1]
        clamped = np.clip(targets, low, high)
        self.counters["position_clips"] += int(np.count_nonzero(clamped != targets))
        tau = self.kp * (clamped - state.q) - self.kd * state.dq
        over = np.abs(tau) > self.torque_limit
        if over.any():
            # Move q* so that the estimated torque sits at the limit (as PositionLimit edits the command).
            limited = np.clip(tau, -self.torque_limit, self.torque_limit)
            safe_kp = np.where(self.kp > 0, self.kp, 1.0)
            moved = state.q + (limited + self.kd * state.dq) / safe_kp
            clamped = np.clip(np.where(over & (self.kp > 0), moved, clamped), low, high)
            tau = limited
            self.counters["torque_clips"] += int(np.count_nonzero(over))
        self.last_power_w = float(np.sum(np.abs(tau * state.dq)))
        power_over = self.last_power_w > self.config.power_limit_w
        self.counters["power_events"] += int(power_over)
        if over.any() or power_over:
            self.counters["guard_events"] += 1
            self._guard_run += 1
            if self._guard_run >= self._persist_periods:
                what = f"power {self.last_power_w:.0f} W" if power_over else f"torque beyond {self.torque_limit.max()}"
                self._fault = f"guard hit for {self._guard_run} periods in a row ({what}); damping until cleared"
                self.counters["guard_trips"] += 1
        else:
            self._guard_run = 0
        return targets_to_motor_cmd(clamped, self.kp, self.kd, contract=self.contract)

    def _send(self, command: LowCmd) -> None:
        if not is_finite_cmd(command):  # cannot happen (inputs are checked); never put it on the wire anyway
            command = self._damping
        self.last_command = command
        packet = pack_low_cmd_fast(command)
        if self.config.dry_run:
            self.counters["would_send"] += 1
            return
        try:
            self._sock.sendto(packet, self._robot_address)
            self.counters["sent"] += 1
        except OSError:
            self.counters["send_errors"] += 1


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="a1-driver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot", nargs=2, default=(ROBOT_IP, str(ROBOT_PORT)), metavar=("IP", "PORT"))
    parser.add_argument("--local", nargs=2, default=("192.168.123.162", str(LOCAL_PORT)), metavar=("IP", "PORT"))
    parser.add_argument("--send", action="store_true", help="really send (default: dry run)")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to talk")
    args = parser.parse_args(argv)
    config = DriverConfig(robot_ip=args.robot[0], robot_port=int(args.robot[1]), local_ip=args.local[0],
                          local_port=int(args.local[1]), dry_run=not args.send)  # fmt: skip
    # A link check: no targets are ever set, so only damping commands go out (the legs fold slowly).
    with A1Driver(config) as driver:
        time.sleep(args.seconds)
        print(json.dumps(driver.snapshot()), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "a1-driver")


if __name__ == "__main__":
    raise SystemExit(main())
