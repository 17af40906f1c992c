"""The emulated A1 behind the real robot's low-level UDP protocol: a stand-in for ``192.168.123.10:8007``.

:class:`UdpEmulatedA1` runs :class:`~robot_bridge.emulator.EmulatedA1` in a thread of its own, paced by the wall
clock (``speed`` simulated seconds per second, physics at the contract's ``sim_dt``), and speaks the A1 wire
format of :mod:`robot_bridge.unitree_protocol`:

* it receives ``LowCmd`` datagrams; each is validated (length, CRC, level flag, finite values, gains >= 0) and a
  bad one is counted and never applied: the last good command holds;
* it applies the newest good command per motor as the firmware does (A1_HARDWARE.md section 0.5):
  ``tau = Kp (q* - q) + Kd (dq* - dq) + tau_ff``, clipped to the effort limit, times the gap's motor strength;
  ``q* = PosStopF`` switches the position term off, ``dq* = VelStopF`` the velocity term; a motor mode other
  than 0x0A (servo) brakes: ``tau = -BRAKE_KD dq`` (the firmware's 0x00 behaviour is not published);
* every ``1 / state_rate_hz`` (500 Hz, the SDK's loop rate) it sends a ``LowState`` to the sender of the last
  good command: joints in SDK motor order, IMU (quaternion w x y z, gyroscope, accelerometer, rpy), foot forces
  as raw counts (``foot_force_scale`` N per count), and ``tick`` = the emulator's clock in microseconds, one
  period per packet (a period the emulator could not serve shows up as a gap in ``tick``, as on the robot).

Before the first good command the robot stands in the training simulator's PD at the default pose. Run it
alone (it publishes nothing on ROS; ``emulator_node`` with ``interface:=udp`` wraps it)::

    python -m robot_bridge.emulator_udp --bind 127.0.0.1 8007 [--speed 1]
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable

import numpy as np

from a1_common.cli import ArgumentParser, run_main
from a1_contract import TaskContract, get_contract, robot
from robot_bridge.emulator import DynamicsGap, EmulatedA1, MotorCommand, Sensors
from robot_bridge.unitree_codec import ProtocolError, ProtocolStats, pack_low_state_fast, unpack_low_cmd_fast
from robot_bridge.unitree_mapping import FOOT_FORCE_NEWTONS_PER_UNIT, contract_to_motor_state, set_foot_forces
from robot_bridge.unitree_protocol import MODE_SERVO, POS_STOP_F, ROBOT_PORT, VEL_STOP_F, LowCmd, LowState

BRAKE_KD = 1.0
"""N m s/rad of a motor in a non-servo mode (0x00 "damping/brake"). Assumed: Unitree does not publish it."""
STATE_RATE_HZ = 500.0
"""LowState packets per second (every Unitree example loops at dt = 0.002 s)."""


def motor_command_from_low_cmd(cmd: LowCmd, contract: TaskContract, brake_kd: float = BRAKE_KD) -> MotorCommand:
    """What the firmware applies for ``cmd``, per joint in contract order (see the module docs)."""
    idx = np.asarray(contract.sdk_motor_index, dtype=np.intp)
    q, dq = cmd.q[idx].astype(np.float64), cmd.dq[idx].astype(np.float64)
    kp, kd, tau = (getattr(cmd, name)[idx].astype(np.float64) for name in ("kp", "kd", "tau"))
    position_off = np.abs(q) >= 0.5 * POS_STOP_F  # nothing but PosStopF is that large
    velocity_off = np.abs(dq) >= 0.5 * VEL_STOP_F
    q[position_off], kp[position_off] = 0.0, 0.0
    dq[velocity_off], kd[velocity_off] = 0.0, 0.0
    brake = cmd.mode[idx] != MODE_SERVO
    q[brake], dq[brake], kp[brake], kd[brake], tau[brake] = 0.0, 0.0, 0.0, brake_kd, 0.0
    return MotorCommand(q=q, dq=dq, kp=kp, kd=kd, tau=tau).validated(contract.num_joints)


def rpy_from_wxyz(quaternion: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (rad, ZYX convention) of a unit quaternion (w, x, y, z)."""
    w, x, y, z = (float(v) for v in quaternion)
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (w * y - z * x))))
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def state_from_sensors(
    sensors: Sensors, contract: TaskContract, tick: int, foot_force_scale: float = FOOT_FORCE_NEWTONS_PER_UNIT
) -> LowState:
    """The ``LowState`` a real A1 would send for ``sensors`` (joint effort as ``tauEst``)."""
    state = LowState(tick=int(tick) & 0xFFFFFFFF)
    contract_to_motor_state(state, sensors.joint_pos, sensors.joint_vel, sensors.joint_effort, contract=contract)
    state.quaternion[:] = sensors.orientation_wxyz
    state.gyroscope[:] = sensors.angular_velocity
    state.accelerometer[:] = sensors.linear_acceleration
    state.rpy[:] = rpy_from_wxyz(sensors.orientation_wxyz)
    return set_foot_forces(state, sensors.foot_forces, robot.FOOT_NAMES, foot_force_scale)


class UdpEmulatedA1:
    """An :class:`EmulatedA1` answering the A1 low-level UDP protocol on ``bind`` (see the module docs).

    It starts at construction; :meth:`stop` (or ``with``) ends it. ``robot`` is shared with the physics thread:
    read or change it only while holding ``lock``. ``on_sensors`` is called (in the physics thread, under the
    lock) with the noise-free truth of each new sample (``sensors`` is the measured one, what the LowState carries),
    after the physics steps that were due.
    """

    def __init__(
        self,
        contract: TaskContract,
        gap: DynamicsGap | None = None,
        bind: tuple[str, int] = ("127.0.0.1", ROBOT_PORT),
        speed: float = 1.0,
        *,
        state_rate_hz: float = STATE_RATE_HZ,
        brake_kd: float = BRAKE_KD,
        foot_force_scale: float = FOOT_FORCE_NEWTONS_PER_UNIT,
        max_catch_up_steps: int = 20,
        on_sensors: Callable[[Sensors], None] | None = None,
    ) -> None:
        if speed <= 0 or state_rate_hz <= 0 or brake_kd < 0 or foot_force_scale <= 0:
            raise ValueError(
                f"need speed > 0, state_rate_hz > 0, brake_kd >= 0, foot_force_scale > 0; got {speed}, "
                f"{state_rate_hz}, {brake_kd}, {foot_force_scale}"
            )
        self.contract = contract
        self.robot = EmulatedA1(contract, gap)
        self.lock = threading.Lock()
        self.stats = ProtocolStats()
        """Validation of received LowCmd datagrams (ok, short_packets, crc_errors, wrong_level)."""
        self.counters = {"datagrams": 0, "applied": 0, "rejected_values": 0, "states_sent": 0, "send_errors": 0,
                         "steps_behind": 0, "callback_errors": 0}  # fmt: skip
        """``rejected_values``: packets that passed the checks but carried non-finite values or negative gains."""
        self.sensors: Sensors | None = None
        """The newest sample (what the last LowState carried)."""
        self._state: LowState | None = None
        self.peer: tuple[str, int] | None = None
        """Where LowStates go: the sender of the last good LowCmd."""
        self._speed, self._brake_kd, self._foot_scale = speed, brake_kd, foot_force_scale
        self._max_steps = max(1, int(max_catch_up_steps))
        self._period = 1.0 / state_rate_hz
        self._on_sensors = on_sensors
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(bind)
        except OSError as exc:
            self._sock.close()
            raise OSError(f"UdpEmulatedA1: cannot bind {bind[0]}:{bind[1]}: {exc}") from exc
        self._sock.setblocking(False)
        self.address: tuple[str, int] = self._sock.getsockname()
        """The bound (ip, port): where a driver sends its LowCmds."""
        self._steps, self._slot = 0, -1
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="udp_emulated_a1", daemon=True)
        self._thread.start()

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the physics and close the socket (the robot goes silent). Idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._sock.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> UdpEmulatedA1:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Standing at the default pose again, in the simulator's PD, until the next good LowCmd."""
        with self.lock:
            self.robot.reset()

    # ---- the loop -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        next_wake = time.monotonic()
        while not self._stop.is_set():
            with self.lock:
                self._receive()
                self._advance()
                self._reply()
            next_wake = max(next_wake + self._period, time.monotonic())
            self._stop.wait(next_wake - time.monotonic())

    def _receive(self) -> None:
        newest = None
        while True:
            try:
                data, sender = self._sock.recvfrom(2048)
            except BlockingIOError:
                break
            except OSError:  # e.g. an ICMP error surfaced on the socket: nothing to read
                break
            self.counters["datagrams"] += 1
            try:
                newest = (unpack_low_cmd_fast(data, self.stats), sender)
            except ProtocolError:
                continue  # counted in self.stats
        if newest is None:
            return
        try:
            command = motor_command_from_low_cmd(newest[0], self.contract, self._brake_kd)
        except ValueError:
            self.counters["rejected_values"] += 1
            return
        self.robot.set_motor_command(command)
        self.peer = newest[1]
        self.counters["applied"] += 1

    def _advance(self) -> None:
        sim_dt = self.contract.sim_dt
        due = int((time.monotonic() - self._t0) * self._speed / sim_dt) - self._steps
        if due > self._max_steps:  # too late to catch up: simulated time falls behind the wall clock
            self.counters["steps_behind"] += due - self._max_steps
            self._t0 += (due - self._max_steps) * sim_dt / self._speed
            due = self._max_steps
        if due <= 0 and self.sensors is not None:
            return
        if due > 0:
            self.robot.step(due)
            self._steps += due
        self.sensors, truth = self.robot.sense_pair()
        self._state = state_from_sensors(self.sensors, self.contract, 0, self._foot_scale)
        if self._on_sensors is not None:
            try:
                self._on_sensors(truth)
            except Exception:  # a subscriber's bug must not stop the robot
                self.counters["callback_errors"] += 1

    def _reply(self) -> None:
        slot = max(int((time.monotonic() - self._t0) / self._period), self._slot + 1)
        self._slot = slot
        if self.peer is None or self._state is None:
            return
        self._state.tick = round(slot * self._period * 1e6) & 0xFFFFFFFF
        packet = pack_low_state_fast(self._state)
        try:
            self._sock.sendto(packet, self.peer)
            self.counters["states_sent"] += 1
        except OSError:
            self.counters["send_errors"] += 1


def _main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="emulator-udp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", nargs=2, default=("127.0.0.1", str(ROBOT_PORT)), metavar=("IP", "PORT"))
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall-clock second")
    args = parser.parse_args(argv)
    emulator = UdpEmulatedA1(get_contract(), bind=(args.bind[0], int(args.bind[1])), speed=args.speed)
    print(f"emulated A1 listening on {emulator.address[0]}:{emulator.address[1]} (Ctrl-C stops)", flush=True)
    try:
        while emulator.running:
            time.sleep(1.0)
            print(f"{emulator.counters} {emulator.stats.as_dict()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "emulator-udp")


if __name__ == "__main__":
    raise SystemExit(main())
