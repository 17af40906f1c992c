"""The Unitree A1 low-level UDP protocol (SDK v3.2 / v3.3.x): wire layout, message types, constants, SDK CRC32.

Pure Python + numpy, no ROS, no vendor binary. Both directions use it, so a driver (PC side: packs
``LowCmd``, unpacks ``LowState``) and an emulator (robot side: the reverse) speak the same bytes. Packing,
unpacking and receive validation are in :mod:`robot_bridge.unitree_codec`; contract joint order <-> SDK motor
slots in :mod:`robot_bridge.unitree_mapping`.

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
LOW_CMD_SIZE = struct.calcsize(LOW_CMD_FMT)  # 730
LOW_STATE_SIZE = struct.calcsize(LOW_STATE_FMT)  # 891
LOW_CMD_CRC_WORDS = (LOW_CMD_SIZE >> 2) - 1  # 181 words = bytes 0..723 (see module docstring: inferred)
LOW_STATE_CRC_WORDS = (LOW_STATE_SIZE >> 2) - 1  # 221 words = bytes 0..883

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


# ---- numpy records: the same layout, for unitree_codec's fast path ------------------------------------------
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
