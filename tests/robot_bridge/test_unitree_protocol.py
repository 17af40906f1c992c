"""The A1 low-level wire protocol: sizes, layout, CRC, validation counters and the joint <-> motor mapping."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from a1_contract import get_contract
from a1_contract.robot import sdk_motor_index
from robot_bridge import unitree_codec as codec
from robot_bridge import unitree_mapping as mapping
from robot_bridge import unitree_protocol as up

# Offsets from the SDK v3.3.x comm.h members (pack(1)): header 1+2+2+4+1 = 10 B, MotorCmd 1+5*4+3*4 = 33 B,
# LED 3 B, IMU 13*4+1 = 53 B, MotorState 1+7*4+1+2*4 = 38 B.
LOW_CMD_OFFSETS = {"motorCmd": 10, "led": 670, "wirelessRemote": 682, "reserve": 722, "crc": 726}
LOW_STATE_OFFSETS = {
    "imu": 10,
    "motorState": 63,
    "footForce": 823,
    "footForceEst": 831,
    "tick": 839,
    "wirelessRemote": 843,
    "reserve": 883,
    "crc": 887,
}


def reference_crc32_core(data: bytes, n_words: int) -> int:
    """Bit-by-bit transcription of the SDK's crc32_core loop, kept separate from the module's zlib version."""
    crc = 0xFFFFFFFF
    poly = 0x04C11DB7
    for i in range(n_words):
        word = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        xbit = 1 << 31
        for _ in range(32):
            if crc & 0x80000000:
                crc = ((crc << 1) ^ poly) & 0xFFFFFFFF
            else:
                crc = (crc << 1) & 0xFFFFFFFF
            if word & xbit:
                crc ^= poly
            xbit >>= 1
    return crc


def f32(rng: np.random.Generator, n: int | tuple[int, ...]) -> np.ndarray:
    return rng.uniform(-100.0, 100.0, n).astype(np.float32)


def random_cmd(rng: np.random.Generator) -> up.LowCmd:
    return up.LowCmd(
        level_flag=up.LOWLEVEL,
        comm_version=int(rng.integers(0, 2**16)),
        robot_id=int(rng.integers(0, 2**16)),
        sn=int(rng.integers(0, 2**32)),
        band_width=int(rng.integers(0, 256)),
        mode=rng.integers(0, 256, 20).astype(np.uint8),
        q=f32(rng, 20),
        dq=f32(rng, 20),
        tau=f32(rng, 20),
        kp=f32(rng, 20),
        kd=f32(rng, 20),
        motor_reserve=rng.integers(0, 2**32, (20, 3)).astype(np.uint32),
        led=rng.integers(0, 256, (4, 3)).astype(np.uint8),
        wireless_remote=rng.integers(0, 256, 40).astype(np.uint8),
        reserve=int(rng.integers(0, 2**32)),
    )


def random_state(rng: np.random.Generator) -> up.LowState:
    return up.LowState(
        level_flag=up.LOWLEVEL,
        comm_version=int(rng.integers(0, 2**16)),
        robot_id=int(rng.integers(0, 2**16)),
        sn=int(rng.integers(0, 2**32)),
        band_width=int(rng.integers(0, 256)),
        quaternion=f32(rng, 4),
        gyroscope=f32(rng, 3),
        accelerometer=f32(rng, 3),
        rpy=f32(rng, 3),
        imu_temperature=int(rng.integers(-128, 128)),
        mode=rng.integers(0, 256, 20).astype(np.uint8),
        q=f32(rng, 20),
        dq=f32(rng, 20),
        ddq=f32(rng, 20),
        tau_est=f32(rng, 20),
        q_raw=f32(rng, 20),
        dq_raw=f32(rng, 20),
        ddq_raw=f32(rng, 20),
        temperature=rng.integers(-128, 128, 20).astype(np.int8),
        motor_reserve=rng.integers(0, 2**32, (20, 2)).astype(np.uint32),
        foot_force=rng.integers(-(2**15), 2**15, 4).astype(np.int16),
        foot_force_est=rng.integers(-(2**15), 2**15, 4).astype(np.int16),
        tick=int(rng.integers(0, 2**32)),
        wireless_remote=rng.integers(0, 256, 40).astype(np.uint8),
        reserve=int(rng.integers(0, 2**32)),
    )


def assert_same_fields(a: object, b: object, skip: tuple[str, ...] = ("crc",)) -> None:
    for name, va in vars(a).items():
        if name in skip:
            continue
        vb = getattr(b, name)
        if isinstance(va, np.ndarray):
            assert vb.dtype == va.dtype, name
            np.testing.assert_array_equal(vb, va, err_msg=name)
        else:
            assert vb == va, name


# ---- sizes and layout ----------------------------------------------------------------------------------------
def test_struct_sizes_match_the_sdk():
    assert struct.calcsize(up.LOW_CMD_FMT) == 730
    assert struct.calcsize(up.LOW_STATE_FMT) == 891
    assert struct.calcsize("<" + up.MOTOR_CMD_FMT) == 33
    assert struct.calcsize("<" + up.MOTOR_STATE_FMT) == 38
    assert struct.calcsize("<" + up.IMU_FMT) == 53
    assert struct.calcsize("<" + up.LED_FMT) == 3
    assert struct.calcsize("<" + up.HEADER_FMT) == 10
    assert len(codec.pack_low_cmd(up.LowCmd())) == 730
    assert len(codec.pack_low_state(up.LowState())) == 891
    # crc32_core((uint32_t*)&msg, (sizeof(msg) >> 2) - 1)
    assert up.LOW_CMD_CRC_WORDS == 181 and up.LOW_STATE_CRC_WORDS == 221


def test_low_cmd_field_offsets():
    cmd = up.LowCmd(sn=0x11223344, reserve=0xA1B2C3D4)
    cmd.mode[1] = 0x0A
    cmd.q[1] = 1.5
    cmd.kd[19] = -2.25
    cmd.led[3] = (7, 8, 9)
    cmd.wireless_remote[0] = 0x5A
    data = codec.pack_low_cmd(cmd)
    o = LOW_CMD_OFFSETS
    assert data[0] == 0xFF
    assert struct.unpack_from("<I", data, 5)[0] == 0x11223344
    assert data[o["motorCmd"] + 33] == 0x0A
    assert struct.unpack_from("<f", data, o["motorCmd"] + 33 + 1)[0] == 1.5
    assert struct.unpack_from("<f", data, o["motorCmd"] + 19 * 33 + 17)[0] == -2.25
    assert data[o["led"] + 9 : o["led"] + 12] == bytes((7, 8, 9))
    assert data[o["wirelessRemote"]] == 0x5A
    assert struct.unpack_from("<I", data, o["reserve"])[0] == 0xA1B2C3D4
    assert struct.unpack_from("<I", data, o["crc"])[0] == reference_crc32_core(data, 181)


def test_low_state_field_offsets():
    st = up.LowState(tick=0xDEADBEEF, reserve=0x01020304)
    st.quaternion[:] = (0.5, -0.5, 0.25, 1.0)
    st.accelerometer[2] = 9.81
    st.imu_temperature = -3
    st.q[2] = -1.25
    st.tau_est[11] = 3.5
    st.temperature[11] = 42
    st.foot_force[:] = (10, -20, 30, 400)
    st.foot_force_est[3] = -7
    data = codec.pack_low_state(st)
    o = LOW_STATE_OFFSETS
    assert struct.unpack_from("<4f", data, o["imu"]) == (0.5, -0.5, 0.25, 1.0)
    assert struct.unpack_from("<f", data, o["imu"] + 36)[0] == pytest.approx(9.81, rel=1e-7)
    assert struct.unpack_from("<b", data, o["imu"] + 52)[0] == -3
    assert struct.unpack_from("<f", data, o["motorState"] + 2 * 38 + 1)[0] == -1.25
    assert struct.unpack_from("<f", data, o["motorState"] + 11 * 38 + 13)[0] == 3.5
    assert struct.unpack_from("<b", data, o["motorState"] + 11 * 38 + 29)[0] == 42
    assert struct.unpack_from("<4h", data, o["footForce"]) == (10, -20, 30, 400)
    assert struct.unpack_from("<h", data, o["footForceEst"] + 6)[0] == -7
    assert struct.unpack_from("<I", data, o["tick"])[0] == 0xDEADBEEF
    assert struct.unpack_from("<I", data, o["reserve"])[0] == 0x01020304
    assert struct.unpack_from("<I", data, o["crc"])[0] == reference_crc32_core(data, 221)


# ---- round trips -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_low_cmd_round_trip(seed):
    cmd = random_cmd(np.random.default_rng(seed))
    data = codec.pack_low_cmd(cmd)
    back = codec.unpack_low_cmd(data)
    assert_same_fields(cmd, back)
    assert back.crc == reference_crc32_core(data, 181)
    assert codec.pack_low_cmd(back) == data


@pytest.mark.parametrize("seed", range(5))
def test_low_state_round_trip(seed):
    st = random_state(np.random.default_rng(100 + seed))
    data = codec.pack_low_state(st)
    back = codec.unpack_low_state(data)
    assert_same_fields(st, back)
    assert back.crc == reference_crc32_core(data, 221)
    assert codec.pack_low_state(back) == data


def test_float64_inputs_are_rounded_to_float32():
    cmd = up.LowCmd()
    cmd.q = np.full(20, 0.1, dtype=np.float64)
    back = codec.unpack_low_cmd(codec.pack_low_cmd(cmd))
    np.testing.assert_array_equal(back.q, np.full(20, np.float32(0.1)))


# ---- CRC -------------------------------------------------------------------------------------------------------
def test_crc_known_answers():
    # CRC-32/MPEG-2 catalogue check value (same polynomial, init, MSB first, no final xor).
    assert up.crc32_mpeg2(b"123456789") == 0x0376E6E7
    for size, words in ((730, 181), (891, 221)):
        zeros = bytes(size)
        assert up.crc32_core(zeros, words) == reference_crc32_core(zeros, words)
    # One word by hand: register 0xFFFFFFFF shifted 32 times through the polynomial, data 0.
    assert up.crc32_core(bytes(4), 1) == reference_crc32_core(bytes(4), 1)
    assert up.crc32_core(bytes(4), 1) != up.crc32_core(b"\x01\x00\x00\x00", 1)


@pytest.mark.parametrize("seed", range(3))
def test_crc_matches_bitwise_reference_on_random_data(seed):
    data = np.random.default_rng(seed).integers(0, 256, 891, dtype=np.uint8).tobytes()
    for words in (1, 2, 181, 221):
        assert up.crc32_core(data, words) == reference_crc32_core(data, words)


def test_crc_reads_words_little_endian():
    # Byte order inside a word matters: reversing one word's bytes changes the CRC.
    a = bytes((1, 2, 3, 4))
    assert up.crc32_core(a, 1) == reference_crc32_core(a, 1)
    assert up.crc32_core(a, 1) != up.crc32_core(a[::-1], 1)


@pytest.mark.parametrize(
    ("pack", "unpack", "covered", "size"),
    [
        (lambda: codec.pack_low_cmd(random_cmd(np.random.default_rng(7))), codec.unpack_low_cmd, 724, 730),
        (lambda: codec.pack_low_state(random_state(np.random.default_rng(8))), codec.unpack_low_state, 884, 891),
    ],
    ids=["LowCmd", "LowState"],
)
def test_any_flipped_byte_breaks_the_crc(pack, unpack, covered, size):
    data = pack()
    unpack(data)  # valid as packed
    stats = codec.ProtocolStats()
    flips = [*range(covered), *range(size - 4, size)]  # every CRC-covered byte and the crc field itself
    for i in flips:
        bad = bytearray(data)
        bad[i] ^= 0x01 if i % 2 else 0xFF
        with pytest.raises(codec.CrcError):
            unpack(bytes(bad), stats)
    assert stats.crc_errors == len(flips) and stats.ok == 0


# ---- validation and counters -------------------------------------------------------------------------------
def test_short_and_long_packets_are_rejected_and_counted():
    data = codec.pack_low_state(up.LowState())
    stats = codec.ProtocolStats()
    for bad in (b"", data[:1], data[:-1], data[:730], data + b"\x00"):
        with pytest.raises(codec.WrongLengthError):
            codec.unpack_low_state(bad, stats)
    # A valid LowCmd is not a LowState.
    with pytest.raises(codec.WrongLengthError):
        codec.unpack_low_state(codec.pack_low_cmd(up.LowCmd()), stats)
    with pytest.raises(codec.WrongLengthError):
        codec.unpack_low_cmd(data, stats)
    assert stats.as_dict() == {"ok": 0, "short_packets": 7, "crc_errors": 0, "wrong_level": 0}


def test_wrong_level_flag_is_rejected_and_counted():
    stats = codec.ProtocolStats()
    for level in (up.HIGHLEVEL, 0xEE, 0xF0):
        with pytest.raises(codec.WrongLevelError):
            codec.unpack_low_state(codec.pack_low_state(up.LowState(level_flag=level)), stats)
        with pytest.raises(codec.WrongLevelError):
            codec.unpack_low_cmd(codec.pack_low_cmd(up.LowCmd(level_flag=level)), stats)
    assert stats.wrong_level == 6 and stats.crc_errors == 0 and stats.ok == 0


def test_bad_crc_is_rejected_and_counted_then_good_packets_count_ok():
    stats = codec.ProtocolStats()
    data = bytearray(codec.pack_low_state(up.LowState()))
    data[-1] ^= 0x80
    with pytest.raises(codec.CrcError):
        codec.unpack_low_state(bytes(data), stats)
    assert isinstance(codec.CrcError("x"), codec.ProtocolError)
    for _ in range(3):
        codec.unpack_low_state(codec.pack_low_state(up.LowState()), stats)
    assert stats.as_dict() == {"ok": 3, "short_packets": 0, "crc_errors": 1, "wrong_level": 0}
    assert stats.rejected == 1


def test_stats_are_optional():
    with pytest.raises(codec.ProtocolError):
        codec.unpack_low_cmd(b"\xff" * 10)


# ---- joint mapping -------------------------------------------------------------------------------------------
def test_a_target_on_one_joint_lands_on_exactly_its_sdk_motor():
    contract = get_contract()
    # Spot checks against quadruped.h: FR_0 = 0, FL_1 = 4, RR_2 = 8, RL_0 = 9.
    assert sdk_motor_index("FR_hip_joint") == 0 and sdk_motor_index("FL_thigh_joint") == 4
    assert sdk_motor_index("RR_calf_joint") == 8 and sdk_motor_index("RL_hip_joint") == 9
    for j, name in enumerate(contract.joint_names):
        q = np.zeros(12)
        q[j] = 0.7
        kp = np.ones(12)
        kp[j] = 33.0
        cmd = mapping.targets_to_motor_cmd(q, kp=kp, kd=0.5, contract=contract)
        motor = sdk_motor_index(name)
        assert np.flatnonzero(cmd.q).tolist() == [motor], name
        assert cmd.q[motor] == np.float32(0.7)
        assert np.flatnonzero(cmd.kp == 33.0).tolist() == [motor], name
        # And it survives the wire.
        back = codec.unpack_low_cmd(codec.pack_low_cmd(cmd))
        assert np.flatnonzero(back.q).tolist() == [motor], name


def test_servo_cmd_modes_and_unused_motors():
    cmd = mapping.targets_to_motor_cmd(np.full(12, 0.3), kp=25.0, kd=0.5)
    assert cmd.level_flag == up.LOWLEVEL
    assert (cmd.mode[:12] == up.MODE_SERVO).all() and (cmd.mode[12:] == 0).all()
    for arr in (cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd):
        assert (arr[12:] == 0).all()
    assert (cmd.kp[:12] == 25.0).all() and (cmd.kd[:12] == np.float32(0.5)).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_targets_never_reach_a_command(bad):
    q = np.zeros(12)
    q[5] = bad
    with pytest.raises(ValueError):
        mapping.targets_to_motor_cmd(q, kp=25.0, kd=0.5)
    with pytest.raises(ValueError):
        mapping.targets_to_motor_cmd(np.zeros(12), kp=bad, kd=0.5)
    with pytest.raises(ValueError):
        mapping.targets_to_motor_cmd(np.zeros(11), kp=25.0, kd=0.5)


def test_motor_state_to_contract_order():
    contract = get_contract()
    st = up.LowState()
    st.q[:] = np.arange(20)
    st.dq[:] = 100 + np.arange(20)
    st.tau_est[:] = -np.arange(20)
    st = codec.unpack_low_state(codec.pack_low_state(st))
    q, dq, tau = mapping.motor_state_to_contract(st, contract)
    expected = np.array([sdk_motor_index(n) for n in contract.joint_names], dtype=np.float64)
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(dq, 100 + expected)
    np.testing.assert_array_equal(tau, -expected)
    assert q.dtype == np.float64


def test_emulator_side_round_trip_through_contract_order():
    rng = np.random.default_rng(3)
    q, dq, tau = rng.normal(size=(3, 12))
    st = mapping.contract_to_motor_state(up.LowState(), q, dq, tau)
    back = mapping.motor_state_to_contract(codec.unpack_low_state(codec.pack_low_state(st)))
    for got, want in zip(back, (q, dq, tau), strict=True):
        np.testing.assert_array_equal(got, want.astype(np.float32).astype(np.float64))


def test_imu_and_foot_forces():
    st = up.LowState()
    st.quaternion[:] = (0.9, 0.1, -0.2, 0.3)
    st.gyroscope[:] = (0.1, 0.2, 0.3)
    st.accelerometer[:] = (0.0, 0.0, 9.8)
    st.foot_force[:] = (1, 2, 3, 4)
    st = codec.unpack_low_state(codec.pack_low_state(st))
    quat, gyro, acc = mapping.imu_from_state(st)
    np.testing.assert_allclose(quat, (0.9, 0.1, -0.2, 0.3), rtol=1e-6)
    np.testing.assert_allclose(gyro, (0.1, 0.2, 0.3), rtol=1e-6)
    np.testing.assert_allclose(acc, (0.0, 0.0, 9.8), rtol=1e-6)
    assert mapping.foot_forces(st) == {"FR": 1.0, "FL": 2.0, "RR": 3.0, "RL": 4.0}


# ---- damping ---------------------------------------------------------------------------------------------------
def test_damping_cmd_has_zero_kp_everywhere():
    cmd = codec.unpack_low_cmd(codec.pack_low_cmd(mapping.damping_cmd(kd=2.0)))
    assert (cmd.kp == 0).all()
    assert (cmd.dq == 0).all() and (cmd.tau == 0).all()
    assert (cmd.kd[:12] == 2.0).all() and (cmd.kd[12:] == 0).all()
    assert (cmd.mode[:12] == up.MODE_SERVO).all() and (cmd.mode[12:] == 0).all()
    assert (cmd.q[:12] == np.float32(up.POS_STOP_F)).all()


@pytest.mark.parametrize("kd", [0.0, -1.0, np.nan])
def test_damping_needs_positive_kd(kd):
    with pytest.raises(ValueError):
        mapping.damping_cmd(kd)


def test_brake_cmd_is_mode_zero_and_all_zero():
    cmd = codec.unpack_low_cmd(codec.pack_low_cmd(mapping.brake_cmd()))
    assert (cmd.mode == up.MODE_BRAKE).all()
    for arr in (cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd):
        assert (arr == 0).all()
