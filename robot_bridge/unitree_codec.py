"""Packing and unpacking of the A1 low-level datagrams (layout in :mod:`robot_bridge.unitree_protocol`).

Two paths give the same bytes and the same results: the ``struct`` path (:func:`pack_low_cmd`,
:func:`unpack_low_state`, ...) and the numpy-record path (``*_fast``), several times faster, for the 500 Hz
loops. Unpacking validates every datagram (length, then CRC, then level flag); a packet that must be dropped
raises a :class:`ProtocolError` subclass and is counted in a :class:`ProtocolStats`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_bridge.unitree_protocol import (
    LOW_CMD_CRC_WORDS,
    LOW_CMD_DTYPE,
    LOW_CMD_FMT,
    LOW_CMD_SIZE,
    LOW_STATE_CRC_WORDS,
    LOW_STATE_DTYPE,
    LOW_STATE_FMT,
    LOW_STATE_SIZE,
    LOWLEVEL,
    NUM_MOTORS,
    LowCmd,
    LowState,
    crc32_core,
)

_LOW_CMD = struct.Struct(LOW_CMD_FMT)
_LOW_STATE = struct.Struct(LOW_STATE_FMT)
_MOTOR_CMD_N = 9  # values per MotorCmd in the flat tuple
_MOTOR_STATE_N = 11
_HEADER_N = 5
_IMU_N = 14


# ---- errors and counters -----------------------------------------------------------------------------------
class ProtocolError(ValueError):
    """A received packet that must not be used."""


class WrongLengthError(ProtocolError):
    """Datagram length differs from the struct size (truncated, or not an A1 low-level packet)."""


class CrcError(ProtocolError):
    """The crc field does not match the SDK CRC of the covered words."""


class WrongLevelError(ProtocolError):
    """levelFlag is not LOWLEVEL (0xff): a high-level packet or another robot's protocol."""


@dataclass
class ProtocolStats:
    """Receive counters. ``short_packets`` counts every wrong-length datagram (short or long)."""

    ok: int = 0
    short_packets: int = 0
    crc_errors: int = 0
    wrong_level: int = 0

    def record(self, error: ProtocolError | None) -> None:
        if error is None:
            self.ok += 1
        elif isinstance(error, WrongLengthError):
            self.short_packets += 1
        elif isinstance(error, CrcError):
            self.crc_errors += 1
        elif isinstance(error, WrongLevelError):
            self.wrong_level += 1
        else:  # pragma: no cover - every ProtocolError raised here is one of the three
            raise TypeError(f"unknown protocol error {error!r}")

    @property
    def rejected(self) -> int:
        return self.short_packets + self.crc_errors + self.wrong_level

    def as_dict(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "short_packets": self.short_packets,
            "crc_errors": self.crc_errors,
            "wrong_level": self.wrong_level,
        }


# ---- pack / unpack -----------------------------------------------------------------------------------------
def _ints(a: Any, n: int) -> list[int]:
    arr = np.asarray(a).reshape(-1)
    if arr.size != n:
        raise ValueError(f"expected {n} values, got shape {np.shape(a)}")
    return [int(v) for v in arr]


def _floats(a: Any, n: int) -> list[float]:
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ValueError(f"expected {n} values, got shape {np.shape(a)}")
    return arr.tolist()


def _with_crc(body: bytearray, n_words: int) -> bytes:
    struct.pack_into("<I", body, len(body) - 4, crc32_core(bytes(body), n_words))
    return bytes(body)


def pack_low_cmd(cmd: LowCmd) -> bytes:
    """Serialize ``cmd`` to the 730-byte datagram; the crc field is computed (``cmd.crc`` is ignored)."""
    mode = _ints(cmd.mode, NUM_MOTORS)
    q, dq, tau = (_floats(v, NUM_MOTORS) for v in (cmd.q, cmd.dq, cmd.tau))
    kp, kd = _floats(cmd.kp, NUM_MOTORS), _floats(cmd.kd, NUM_MOTORS)
    res = _ints(cmd.motor_reserve, 3 * NUM_MOTORS)
    values: list[Any] = [cmd.level_flag, cmd.comm_version, cmd.robot_id, cmd.sn, cmd.band_width]
    for i in range(NUM_MOTORS):
        values += (mode[i], q[i], dq[i], tau[i], kp[i], kd[i], *res[3 * i : 3 * i + 3])
    values += _ints(cmd.led, 12) + _ints(cmd.wireless_remote, 40) + [cmd.reserve, 0]
    return _with_crc(bytearray(_LOW_CMD.pack(*values)), LOW_CMD_CRC_WORDS)


def pack_low_state(state: LowState) -> bytes:
    """Serialize ``state`` to the 891-byte datagram (robot side); the crc field is computed."""
    s = state
    per_motor = [_floats(v, NUM_MOTORS) for v in (s.q, s.dq, s.ddq, s.tau_est, s.q_raw, s.dq_raw, s.ddq_raw)]
    mode, temp = _ints(s.mode, NUM_MOTORS), _ints(s.temperature, NUM_MOTORS)
    res = _ints(s.motor_reserve, 2 * NUM_MOTORS)
    values: list[Any] = [s.level_flag, s.comm_version, s.robot_id, s.sn, s.band_width]
    values += _floats(s.quaternion, 4) + _floats(s.gyroscope, 3) + _floats(s.accelerometer, 3)
    values += _floats(s.rpy, 3) + [s.imu_temperature]
    for i in range(NUM_MOTORS):
        values += (mode[i], *(f[i] for f in per_motor), temp[i], res[2 * i], res[2 * i + 1])
    values += _ints(s.foot_force, 4) + _ints(s.foot_force_est, 4) + [s.tick]
    values += _ints(s.wireless_remote, 40) + [s.reserve, 0]
    return _with_crc(bytearray(_LOW_STATE.pack(*values)), LOW_STATE_CRC_WORDS)


def _check(data: bytes, layout: struct.Struct, n_words: int, stats: ProtocolStats | None, what: str) -> tuple:
    _validate(data, layout.size, n_words, stats, what)
    return layout.unpack(data)


def _validate(data: bytes, size: int, n_words: int, stats: ProtocolStats | None, what: str) -> None:
    try:
        if len(data) != size:
            raise WrongLengthError(f"{what}: {len(data)} bytes, expected {size}")
        (crc,) = struct.unpack_from("<I", data, size - 4)
        expected = crc32_core(data, n_words)
        if crc != expected:
            raise CrcError(f"{what}: crc 0x{crc:08x}, computed 0x{expected:08x}")
        if data[0] != LOWLEVEL:
            raise WrongLevelError(f"{what}: levelFlag 0x{data[0]:02x}, expected 0x{LOWLEVEL:02x}")
    except ProtocolError as e:
        if stats is not None:
            stats.record(e)
        raise
    if stats is not None:
        stats.record(None)


def unpack_low_state(data: bytes, stats: ProtocolStats | None = None) -> LowState:
    """Parse and validate an 891-byte ``LowState`` datagram (length, then CRC, then level flag).

    Raises a :class:`ProtocolError` subclass and counts it in ``stats`` when the packet must be dropped.
    """
    v = _check(bytes(data), _LOW_STATE, LOW_STATE_CRC_WORDS, stats, "LowState")
    imu = v[_HEADER_N : _HEADER_N + _IMU_N]
    a = _HEADER_N + _IMU_N
    b = a + _MOTOR_STATE_N * NUM_MOTORS
    m = np.array(v[a:b], dtype=np.float64).reshape(NUM_MOTORS, _MOTOR_STATE_N)
    f32 = [m[:, k].astype(np.float32) for k in range(1, 8)]
    tail = v[b:]
    return LowState(
        level_flag=v[0],
        comm_version=v[1],
        robot_id=v[2],
        sn=v[3],
        band_width=v[4],
        quaternion=np.array(imu[0:4], np.float32),
        gyroscope=np.array(imu[4:7], np.float32),
        accelerometer=np.array(imu[7:10], np.float32),
        rpy=np.array(imu[10:13], np.float32),
        imu_temperature=imu[13],
        mode=m[:, 0].astype(np.uint8),
        q=f32[0],
        dq=f32[1],
        ddq=f32[2],
        tau_est=f32[3],
        q_raw=f32[4],
        dq_raw=f32[5],
        ddq_raw=f32[6],
        temperature=m[:, 8].astype(np.int8),
        motor_reserve=m[:, 9:11].astype(np.uint32),
        foot_force=np.array(tail[0:4], np.int16),
        foot_force_est=np.array(tail[4:8], np.int16),
        tick=tail[8],
        wireless_remote=np.array(tail[9:49], np.uint8),
        reserve=tail[49],
        crc=tail[50],
    )


def unpack_low_cmd(data: bytes, stats: ProtocolStats | None = None) -> LowCmd:
    """Parse and validate a 730-byte ``LowCmd`` datagram (robot / emulator side)."""
    v = _check(bytes(data), _LOW_CMD, LOW_CMD_CRC_WORDS, stats, "LowCmd")
    a = _HEADER_N
    b = a + _MOTOR_CMD_N * NUM_MOTORS
    m = np.array(v[a:b], dtype=np.float64).reshape(NUM_MOTORS, _MOTOR_CMD_N)
    tail = v[b:]
    return LowCmd(
        level_flag=v[0],
        comm_version=v[1],
        robot_id=v[2],
        sn=v[3],
        band_width=v[4],
        mode=m[:, 0].astype(np.uint8),
        q=m[:, 1].astype(np.float32),
        dq=m[:, 2].astype(np.float32),
        tau=m[:, 3].astype(np.float32),
        kp=m[:, 4].astype(np.float32),
        kd=m[:, 5].astype(np.float32),
        motor_reserve=m[:, 6:9].astype(np.uint32),
        led=np.array(tail[0:12], np.uint8).reshape(4, 3),
        wireless_remote=np.array(tail[12:52], np.uint8),
        reserve=tail[52],
        crc=tail[53],
    )


# ---- fast path: numpy records, byte-identical to pack_low_cmd / pack_low_state ------------------------------
def _finish(record: np.ndarray, n_words: int) -> bytes:
    body = bytearray(record.tobytes())
    return _with_crc(body, n_words)


def pack_low_cmd_fast(cmd: LowCmd) -> bytes:
    """:func:`pack_low_cmd` through a numpy record: the same bytes, several times faster."""
    r = np.zeros((), LOW_CMD_DTYPE)
    for name in ("level_flag", "comm_version", "robot_id", "sn", "band_width", "led", "wireless_remote", "reserve"):
        r[name] = getattr(cmd, name)
    m = r["motor"]
    for name in ("mode", "q", "dq", "tau", "kp", "kd"):
        m[name] = getattr(cmd, name)
    m["reserve"] = cmd.motor_reserve
    return _finish(r, LOW_CMD_CRC_WORDS)


def pack_low_state_fast(state: LowState) -> bytes:
    """:func:`pack_low_state` through a numpy record: the same bytes, several times faster."""
    r = np.zeros((), LOW_STATE_DTYPE)
    for name in ("level_flag", "comm_version", "robot_id", "sn", "band_width", "quaternion", "gyroscope",
                 "accelerometer", "rpy", "imu_temperature", "foot_force", "foot_force_est", "tick",
                 "wireless_remote", "reserve"):  # fmt: skip
        r[name] = getattr(state, name)
    m = r["motor"]
    for name in ("mode", "q", "dq", "ddq", "tau_est", "q_raw", "dq_raw", "ddq_raw", "temperature"):
        m[name] = getattr(state, name)
    m["reserve"] = state.motor_reserve
    return _finish(r, LOW_STATE_CRC_WORDS)


def unpack_low_state_fast(data: bytes, stats: ProtocolStats | None = None) -> LowState:
    """:func:`unpack_low_state` through a numpy record: the same checks and result, several times faster."""
    data = bytes(data)
    _validate(data, LOW_STATE_SIZE, LOW_STATE_CRC_WORDS, stats, "LowState")
    r = np.frombuffer(data, LOW_STATE_DTYPE)[0]
    m = r["motor"]
    ints = {name: int(r[name]) for name in ("level_flag", "comm_version", "robot_id", "sn", "band_width",
                                              "imu_temperature", "tick", "reserve", "crc")}  # fmt: skip
    arrays = {name: r[name].astype(dtype) for name, dtype in (("quaternion", np.float32), ("gyroscope", np.float32),
              ("accelerometer", np.float32), ("rpy", np.float32), ("foot_force", np.int16),
              ("foot_force_est", np.int16), ("wireless_remote", np.uint8))}  # fmt: skip
    motors = {name: m[name].astype(dtype) for name, dtype in (("mode", np.uint8), ("q", np.float32),
              ("dq", np.float32), ("ddq", np.float32), ("tau_est", np.float32), ("q_raw", np.float32),
              ("dq_raw", np.float32), ("ddq_raw", np.float32), ("temperature", np.int8))}  # fmt: skip
    return LowState(**ints, **arrays, **motors, motor_reserve=m["reserve"].astype(np.uint32))


def unpack_low_cmd_fast(data: bytes, stats: ProtocolStats | None = None) -> LowCmd:
    """:func:`unpack_low_cmd` through a numpy record: the same checks and result, several times faster."""
    data = bytes(data)
    _validate(data, LOW_CMD_SIZE, LOW_CMD_CRC_WORDS, stats, "LowCmd")
    r = np.frombuffer(data, LOW_CMD_DTYPE)[0]
    m = r["motor"]
    ints = {name: int(r[name]) for name in ("level_flag", "comm_version", "robot_id", "sn", "band_width", "reserve",
                                              "crc")}  # fmt: skip
    motors = {name: m[name].astype(np.float32) for name in ("q", "dq", "tau", "kp", "kd")}
    return LowCmd(**ints, **motors, mode=m["mode"].astype(np.uint8), motor_reserve=m["reserve"].astype(np.uint32),
                  led=r["led"].astype(np.uint8), wireless_remote=r["wireless_remote"].astype(np.uint8))  # fmt: skip
