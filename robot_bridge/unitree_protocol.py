"""The Unitree A1 low-level UDP protocol (SDK v3.2 / v3.3.x): packed structs, the SDK's CRC32, joint mapping.

Pure Python + numpy, no ROS, no vendor binary. Both directions are here, so a driver (PC side: packs
``LowCmd``, unpacks ``LowState``) and an emulator (robot side: the reverse) speak the same bytes.

Wire layout (``#pragma pack(1)``, little-endian, no padding). Offsets in bytes::

    MotorCmd   (33 B)  mode u8 @0, q f32 @1, dq f32 @5, tau f32 @9, Kp f32 @13, Kd f32 @17, reserve u32[3] @21
    MotorState (38 B)  mode u8 @0, q @1, dq @5, ddq @9, tauEst @13, q_raw @17, dq_raw @21, ddq_raw @25 (f32),
                       temperature i8 @29, reserve u32[2] @30
    IMU        (53 B)  quaternion f32[4] (w,x,y,z) @0, gyroscope f32[3] @16, accelerometer f32[3] @28,
                       rpy f32[3] @40, temperature i8 @52
    LED        (3 B)   r, g, b u8

    LowCmd   (730 B)  levelFlag u8 @0, commVersion u16 @1, robotID u16 @3, SN u32 @5, bandWidth u8 @9,
                      motorCmd[20] @10 (33 B each), led[4] @670, wirelessRemote u8[40] @682, reserve u32 @722,
                      crc u32 @726
    LowState (891 B)  levelFlag u8 @0, commVersion u16 @1, robotID u16 @3, SN u32 @5, bandWidth u8 @9,
                      imu @10, motorState[20] @63 (38 B each), footForce i16[4] @823, footForceEst i16[4] @831,
                      tick u32 @839, wirelessRemote u8[40] @843, reserve u32 @883, crc u32 @887

What was checked against public sources (through this project's code-search index) and what is inferred:

* Verified: the struct members, their types and order, ``LOWLEVEL = 0xff``, ``HIGHLEVEL = 0x00``,
  ``PosStopF = 2.146e9``, ``VelStopF = 16000`` in a copy of the A1-era SDK ``include/unitree_legged_sdk/comm.h``
  (v3.3.x layout: ``LowCmd`` with ``LED led[4]``, no BMS; ``LowState`` with ``int16 footForce[4]``,
  ``footForceEst[4]``, ``tick``); the same members are in ``../shared/design/A1_HARDWARE.md`` section 3, whose
  author compiled the v3.3.1 header (``sizeof`` 730 / 891) and diffed v3.2 against v3.3.1. Motor and leg
  indices (FR_0 = 0 ... RL_2 = 11; legs FR_=0, FL_=1, RR_=2, RL_=3) from the SDK ``quadruped.h``.
* Verified: the ``crc32_core(uint32_t* ptr, uint32_t len)`` algorithm, as Unitree publishes it in its example
  code (and as free-dog-sdk's ``ucl/common.py genCrc`` re-implements it for Go1): register 0xFFFFFFFF, for each
  32-bit word and each of its bits MSB first: shift left, xor 0x04C11DB7 if the bit shifted out was set, xor
  0x04C11DB7 again if the data bit is set; no final xor. That is CRC-32/MPEG-2 fed each word's bytes
  most-significant first; the words are read from the struct in host (little-endian) order.
* Inferred: the word count. The A1 SDK computes the CRC inside its closed ``.so``. Unitree's published
  callers use ``crc32_core((uint32_t*)&msg, (sizeof(msg) >> 2) - 1)``, and free-dog-sdk's Go1 packet
  (614 B) covers ``cmd[:-6]`` = 152 words = ``(614 >> 2) - 1``. ``(sizeof - 4) >> 2`` gives the same count for
  both A1 structs: 181 words (bytes 0..723) for ``LowCmd``, 221 words (bytes 0..883) for ``LowState``. The last
  2 (LowCmd) / 3 (LowState) bytes of the ``reserve`` field before ``crc`` are therefore not covered.
  To be confirmed against a real A1 (a wrong count shows up as every received packet failing its CRC).
* Inferred from bridges, not from Unitree text: motor mode 0x0A = servo, 0x00 = damping/brake
  (walk_in_the_park ``Brake()``; the Go1 header comment "Servo: 0x0A, Damping: 0x00").
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ---- constants ---------------------------------------------------------------------------------------------
LOWLEVEL = 0xFF
HIGHLEVEL = 0x00
MODE_SERVO = 0x0A
MODE_BRAKE = 0x00  # damping / electronic brake; what the firmware does exactly is not published
POS_STOP_F = 2.146e9  # SDK PosStopF: a q target that disables the position term
VEL_STOP_F = 16000.0  # SDK VelStopF: a dq target that disables the velocity term

NUM_MOTORS = 20  # array length on the wire; only 0..11 drive joints
NUM_LEG_MOTORS = 12
NUM_LEGS = 4
FOOT_LEGS: tuple[str, ...] = ("FR", "FL", "RR", "RL")
"""Leg of each ``footForce`` entry: the SDK leg indices FR_=0, FL_=1, RR_=2, RL_=3 (``quadruped.h``)."""

# Default addresses (SDK v3.3.1 udp.h; the PC is 192.168.123.162/24).
ROBOT_IP = "192.168.123.10"
ROBOT_PORT = 8007
LOCAL_PORT = 8080

# ---- struct formats ----------------------------------------------------------------------------------------
HEADER_FMT = "BHHIB"  # levelFlag, commVersion, robotID, SN, bandWidth
MOTOR_CMD_FMT = "B5f3I"  # mode, q, dq, tau, Kp, Kd, reserve[3]
MOTOR_STATE_FMT = "B7fb2I"  # mode, q, dq, ddq, tauEst, q_raw, dq_raw, ddq_raw, temperature, reserve[2]
IMU_FMT = "4f3f3f3fb"  # quaternion, gyroscope, accelerometer, rpy, temperature
LED_FMT = "3B"

LOW_CMD_FMT = "<" + HEADER_FMT + MOTOR_CMD_FMT * NUM_MOTORS + LED_FMT * 4 + "40B" + "I" + "I"
LOW_STATE_FMT = "<" + HEADER_FMT + IMU_FMT + MOTOR_STATE_FMT * NUM_MOTORS + "4h" + "4h" + "I" + "40B" + "I" + "I"
_LOW_CMD = struct.Struct(LOW_CMD_FMT)
_LOW_STATE = struct.Struct(LOW_STATE_FMT)
LOW_CMD_SIZE = _LOW_CMD.size  # 730
LOW_STATE_SIZE = _LOW_STATE.size  # 891
LOW_CMD_CRC_WORDS = (LOW_CMD_SIZE >> 2) - 1  # 181 words = bytes 0..723 (see module docstring: inferred)
LOW_STATE_CRC_WORDS = (LOW_STATE_SIZE >> 2) - 1  # 221 words = bytes 0..883

_MOTOR_CMD_N = 9  # values per MotorCmd in the flat tuple
_MOTOR_STATE_N = 11
_HEADER_N = 5
_IMU_N = 14

# ---- CRC ---------------------------------------------------------------------------------------------------
_BITREV8 = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _bitrev32(x: int) -> int:
    return int(f"{x:032b}"[::-1], 2)


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, MSB first, no reflection, no final xor) of ``data``.

    Computed with zlib's reflected CRC-32 on bit-reversed bytes: the reflected register is the bit reverse of
    the MSB-first one, the init 0xFFFFFFFF is its own reverse, and zlib's final xor is undone.
    """
    return _bitrev32(zlib.crc32(bytes(data).translate(_BITREV8)) ^ 0xFFFFFFFF)


def crc32_core(data: bytes, n_words: int) -> int:
    """The SDK's ``crc32_core`` over the first ``n_words`` little-endian 32-bit words of ``data``."""
    if n_words * 4 > len(data):
        raise ValueError(f"crc32_core: {n_words} words need {4 * n_words} bytes, got {len(data)}")
    words = np.frombuffer(data, dtype="<u4", count=n_words)
    # Each word is fed most significant bit first, i.e. its big-endian bytes in order.
    return crc32_mpeg2(words.astype(">u4").tobytes())


def low_cmd_crc(packet: bytes) -> int:
    return crc32_core(packet, LOW_CMD_CRC_WORDS)


def low_state_crc(packet: bytes) -> int:
    return crc32_core(packet, LOW_STATE_CRC_WORDS)


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


# ---- message types -----------------------------------------------------------------------------------------
def _zeros(shape: Any, dtype: Any) -> Any:
    return field(default_factory=lambda: np.zeros(shape, dtype=dtype))


@dataclass
class LowCmd:
    """``LowCmd`` with per-motor fields as arrays indexed by SDK motor index (0..19)."""

    level_flag: int = LOWLEVEL
    comm_version: int = 0
    robot_id: int = 0
    sn: int = 0
    band_width: int = 0
    mode: np.ndarray = _zeros(NUM_MOTORS, np.uint8)
    q: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    dq: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    tau: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    kp: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    kd: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    motor_reserve: np.ndarray = _zeros((NUM_MOTORS, 3), np.uint32)
    led: np.ndarray = _zeros((4, 3), np.uint8)
    wireless_remote: np.ndarray = _zeros(40, np.uint8)
    reserve: int = 0
    crc: int = 0


@dataclass
class LowState:
    """``LowState`` with per-motor fields as arrays indexed by SDK motor index (0..19)."""

    level_flag: int = LOWLEVEL
    comm_version: int = 0
    robot_id: int = 0
    sn: int = 0
    band_width: int = 0
    quaternion: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    """IMU attitude (w, x, y, z)."""
    gyroscope: np.ndarray = _zeros(3, np.float32)
    accelerometer: np.ndarray = _zeros(3, np.float32)
    rpy: np.ndarray = _zeros(3, np.float32)
    imu_temperature: int = 0
    mode: np.ndarray = _zeros(NUM_MOTORS, np.uint8)
    q: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    dq: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    ddq: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    tau_est: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    q_raw: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    dq_raw: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    ddq_raw: np.ndarray = _zeros(NUM_MOTORS, np.float32)
    temperature: np.ndarray = _zeros(NUM_MOTORS, np.int8)
    motor_reserve: np.ndarray = _zeros((NUM_MOTORS, 2), np.uint32)
    foot_force: np.ndarray = _zeros(NUM_LEGS, np.int16)
    """Raw foot sensor readings in ``FOOT_LEGS`` order (FR, FL, RR, RL)."""
    foot_force_est: np.ndarray = _zeros(NUM_LEGS, np.int16)
    tick: int = 0
    wireless_remote: np.ndarray = _zeros(40, np.uint8)
    reserve: int = 0
    crc: int = 0


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


# ---- joint mapping (contract order <-> SDK motor index) ----------------------------------------------------
def _motor_index(contract: Any | None) -> np.ndarray:
    if contract is None:
        from a1_contract import get_contract

        contract = get_contract()
    idx = np.asarray(contract.sdk_motor_index, dtype=np.intp)
    if sorted(idx.tolist()) != list(range(NUM_LEG_MOTORS)):
        raise ValueError(f"sdk_motor_index must be a permutation of 0..11, got {idx.tolist()}")
    return idx


def _per_joint(x: Any, what: str, n: int = NUM_LEG_MOTORS) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: non-finite value in {arr.tolist()}")
    return arr


def targets_to_motor_cmd(
    q_targets: Any,
    kp: Any,
    kd: Any,
    dq_targets: Any = 0.0,
    tau_ff: Any = 0.0,
    contract: Any | None = None,
) -> LowCmd:
    """Joint position targets (contract order, rad) + gains -> a servo ``LowCmd`` in SDK motor order.

    ``kp``, ``kd``, ``dq_targets`` and ``tau_ff`` are scalars or per-joint arrays in contract order. Motors
    0..11 get mode 0x0A (servo); motors 12..19 stay zero with mode 0x00. Non-finite inputs raise ValueError
    (nothing non-finite ever reaches the wire).
    """
    idx = _motor_index(contract)
    n = len(idx)
    cmd = LowCmd()
    cmd.mode[idx] = MODE_SERVO
    cmd.q[idx] = _per_joint(q_targets, "q_targets", n)
    cmd.dq[idx] = _per_joint(dq_targets, "dq_targets", n)
    cmd.tau[idx] = _per_joint(tau_ff, "tau_ff", n)
    kp_arr, kd_arr = _per_joint(kp, "kp", n), _per_joint(kd, "kd", n)
    if np.any(kp_arr < 0) or np.any(kd_arr < 0):
        raise ValueError("kp and kd must be >= 0")
    cmd.kp[idx] = kp_arr
    cmd.kd[idx] = kd_arr
    return cmd


def damping_cmd(kd: Any, contract: Any | None = None) -> LowCmd:
    """Damping: every leg motor in servo mode (0x0A) with Kp = 0, dq = 0, tau = 0 and Kd > 0.

    The motor then applies only ``-Kd * dq``: the legs fold slowly under gravity instead of being driven.
    ``q`` is set to the SDK's ``PosStopF`` (the SDK's way of switching the position term off; Kp = 0 does it
    already). We use this rather than mode 0x00 because its strength is ours to choose; the firmware's 0x00
    "damping/brake" behaviour is not published (see :func:`brake_cmd`).
    """
    idx = _motor_index(contract)
    kd_arr = _per_joint(kd, "kd", len(idx))
    if np.any(kd_arr <= 0):
        raise ValueError(f"damping needs kd > 0, got {kd_arr.tolist()}")
    cmd = LowCmd()
    cmd.mode[idx] = MODE_SERVO
    cmd.q[idx] = POS_STOP_F
    cmd.kd[idx] = kd_arr
    return cmd


def brake_cmd() -> LowCmd:
    """Every motor in mode 0x00 (the SDK bridges' "brake"/damping mode) with all targets and gains zero."""
    return LowCmd()


def motor_state_to_contract(state: LowState, contract: Any | None = None) -> tuple[np.ndarray, ...]:
    """Joint ``(q, dq, tau_est)`` in contract order (float64) from a ``LowState``."""
    idx = _motor_index(contract)
    return (
        state.q[idx].astype(np.float64),
        state.dq[idx].astype(np.float64),
        state.tau_est[idx].astype(np.float64),
    )


def contract_to_motor_state(state: LowState, q: Any, dq: Any, tau: Any = 0.0, contract: Any | None = None) -> LowState:
    """Write joint ``q, dq, tau`` (contract order) into ``state``'s motor slots (emulator side); returns it."""
    idx = _motor_index(contract)
    n = len(idx)
    state.q[idx] = _per_joint(q, "q", n)
    state.dq[idx] = _per_joint(dq, "dq", n)
    state.tau_est[idx] = _per_joint(tau, "tau", n)
    state.q_raw[idx] = state.q[idx]
    state.dq_raw[idx] = state.dq[idx]
    state.mode[idx] = MODE_SERVO
    return state


def imu_from_state(state: LowState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(quaternion (w, x, y, z), gyroscope rad/s, accelerometer m/s^2)`` as float64, as the robot reports them."""
    return (
        state.quaternion.astype(np.float64),
        state.gyroscope.astype(np.float64),
        state.accelerometer.astype(np.float64),
    )


def foot_forces(state: LowState) -> dict[str, float]:
    """Raw foot force readings keyed by leg name (FR, FL, RR, RL); units are the sensor's, not newtons."""
    return {leg: float(state.foot_force[i]) for i, leg in enumerate(FOOT_LEGS)}


def is_finite_cmd(cmd: LowCmd) -> bool:
    """True when every float field of ``cmd`` is finite (a last check before sending)."""
    return all(bool(np.isfinite(arr).all()) for arr in (cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd))


# ---- fast packing: numpy records, byte-identical to pack_low_cmd / pack_low_state ---------------------------
# A 500 Hz loop in Python packs one LowCmd (driver) or LowState (emulator) per period; the struct path costs
# ~90 / ~150 us per packet, the record path a fraction of that. Field order and sizes follow the formats above.
_MOTOR_CMD_DTYPE = np.dtype(
    [("mode", "u1"), ("q", "<f4"), ("dq", "<f4"), ("tau", "<f4"), ("kp", "<f4"), ("kd", "<f4"), ("reserve", "<u4", 3)]
)
_MOTOR_STATE_DTYPE = np.dtype(
    [("mode", "u1"), ("q", "<f4"), ("dq", "<f4"), ("ddq", "<f4"), ("tau_est", "<f4"), ("q_raw", "<f4"),
     ("dq_raw", "<f4"), ("ddq_raw", "<f4"), ("temperature", "i1"), ("reserve", "<u4", 2)]
)  # fmt: skip
_HEADER_FIELDS = [("level_flag", "u1"), ("comm_version", "<u2"), ("robot_id", "<u2"), ("sn", "<u4"),
                  ("band_width", "u1")]  # fmt: skip
LOW_CMD_DTYPE = np.dtype(
    [*_HEADER_FIELDS, ("motor", _MOTOR_CMD_DTYPE, NUM_MOTORS), ("led", "u1", (4, 3)), ("wireless_remote", "u1", 40),
     ("reserve", "<u4"), ("crc", "<u4")]
)  # fmt: skip
"""``LowCmd`` as a packed numpy record (730 B)."""
LOW_STATE_DTYPE = np.dtype(
    [*_HEADER_FIELDS, ("quaternion", "<f4", 4), ("gyroscope", "<f4", 3), ("accelerometer", "<f4", 3),
     ("rpy", "<f4", 3), ("imu_temperature", "i1"), ("motor", _MOTOR_STATE_DTYPE, NUM_MOTORS),
     ("foot_force", "<i2", 4), ("foot_force_est", "<i2", 4), ("tick", "<u4"), ("wireless_remote", "u1", 40),
     ("reserve", "<u4"), ("crc", "<u4")]
)  # fmt: skip
"""``LowState`` as a packed numpy record (891 B)."""
assert LOW_CMD_DTYPE.itemsize == LOW_CMD_SIZE and LOW_STATE_DTYPE.itemsize == LOW_STATE_SIZE


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


# ---- foot forces (contract foot order <-> footForce slots) -------------------------------------------------
FOOT_FORCE_NEWTONS_PER_UNIT = 1.0
"""Newtons per raw ``footForce`` count. NOT VERIFIED: Unitree publishes no unit (A1_HARDWARE.md section 3 gives
only contact thresholds in raw counts: 20 walk_in_the_park, 40 legged_control). Calibrate on the robot (stand
still, sum of the four readings * scale = m g) and set the driver's ``foot_force_scale``."""


def foot_slots(foot_names: Any) -> np.ndarray:
    """``footForce`` index of each foot in ``foot_names`` (e.g. ``robot.FOOT_NAMES``: "FL_foot" -> FL -> 1)."""
    try:
        return np.array([FOOT_LEGS.index(str(name).split("_")[0]) for name in foot_names], dtype=np.intp)
    except ValueError as exc:
        raise ValueError(f"foot names must start with one of {FOOT_LEGS}, got {list(foot_names)}") from exc


def foot_forces_newtons(state: LowState, foot_names: Any, scale: float = FOOT_FORCE_NEWTONS_PER_UNIT) -> np.ndarray:
    """Foot forces (N) in ``foot_names`` order from the raw ``footForce`` readings."""
    return state.foot_force[foot_slots(foot_names)].astype(np.float64) * scale


def set_foot_forces(
    state: LowState, forces_n: Any, foot_names: Any, scale: float = FOOT_FORCE_NEWTONS_PER_UNIT
) -> LowState:
    """Write foot forces (N, ``foot_names`` order) as raw int16 counts (emulator side); returns ``state``."""
    if scale <= 0:
        raise ValueError(f"foot force scale must be > 0, got {scale}")
    raw = np.clip(np.round(_per_joint(forces_n, "foot forces", len(foot_names)) / scale), -32768, 32767)
    state.foot_force[foot_slots(foot_names)] = raw.astype(np.int16)
    return state


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
