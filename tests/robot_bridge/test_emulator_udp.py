"""The emulated A1 behind the A1's UDP protocol: the firmware's motor law, packet validation, LowState replies,
and ``emulator_node`` with ``interface:=udp`` (ground truth only on ROS, ``~/reset``). Real MuJoCo, real UDP
sockets on loopback (free ports), real rclpy."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from a1_contract import get_contract, robot
from robot_bridge.emulator import EmulatedA1, MotorCommand
from robot_bridge.emulator_udp import BRAKE_KD, UdpEmulatedA1, motor_command_from_low_cmd, rpy_from_wxyz
from robot_bridge.unitree_codec import (
    CrcError,
    pack_low_cmd,
    pack_low_cmd_fast,
    pack_low_state,
    pack_low_state_fast,
    unpack_low_cmd,
    unpack_low_cmd_fast,
    unpack_low_state,
    unpack_low_state_fast,
)
from robot_bridge.unitree_mapping import brake_cmd, foot_forces_newtons, motor_state_to_contract, targets_to_motor_cmd
from robot_bridge.unitree_protocol import MODE_BRAKE, POS_STOP_F, VEL_STOP_F, LowCmd, LowState
from tests.robot_bridge.conftest import wait_for

CONTRACT = get_contract()
DEFAULT = np.asarray(CONTRACT.default_joint_pos)
KP, KD = np.asarray(CONTRACT.kp), np.asarray(CONTRACT.kd)


def _client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    return sock


def _latest_state(sock: socket.socket) -> LowState:
    """A LowState sent after this call: the queue is drained first (once the receive buffer is full the kernel
    drops the newest datagrams, so what waits there is old)."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(1.0)
    return unpack_low_state(sock.recv(2048))


def test_fast_packing_is_byte_identical_to_the_struct_packing():
    rng = np.random.default_rng(0)
    cmd = targets_to_motor_cmd(rng.normal(size=12), rng.uniform(0, 50, 12), rng.uniform(0, 3, 12), rng.normal(size=12),
                               rng.normal(size=12), contract=CONTRACT)  # fmt: skip
    cmd.sn, cmd.robot_id, cmd.reserve = 123456, 7, 99
    cmd.led[:] = rng.integers(0, 256, (4, 3))
    assert pack_low_cmd_fast(cmd) == pack_low_cmd(cmd)
    state = LowState(tick=2**32 - 1, foot_force=np.array([-32768, 0, 17, 32767], np.int16))
    state.q[:] = rng.normal(size=20)
    state.temperature[:] = rng.integers(-128, 128, 20)
    state.quaternion[:] = rng.normal(size=4)
    assert pack_low_state_fast(state) == pack_low_state(state)
    for fast, slow, packet in ((unpack_low_cmd_fast, unpack_low_cmd, pack_low_cmd(cmd)),
                               (unpack_low_state_fast, unpack_low_state, pack_low_state(state))):  # fmt: skip
        a, b = fast(packet), slow(packet)
        for name in a.__dataclass_fields__:
            x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        with pytest.raises(CrcError):
            fast(packet[:-1] + bytes([packet[-1] ^ 1]))


def test_motor_mode_with_the_contract_gains_is_the_simulators_pd():
    """The firmware law with kp/kd of the contract gives the training simulator's torques, step for step."""
    position, motor = EmulatedA1(CONTRACT), EmulatedA1(CONTRACT)
    rng = np.random.default_rng(1)
    for _ in range(30):
        targets = DEFAULT + rng.normal(0.0, 0.2, 12)
        position.set_targets(targets)
        motor.set_motor_command(MotorCommand(q=targets, dq=np.zeros(12), kp=KP, kd=KD, tau=np.zeros(12)))
        position.step(4)
        motor.step(4)
    np.testing.assert_allclose(motor.data.qpos, position.data.qpos, atol=1e-9)
    np.testing.assert_allclose(motor.sense().joint_effort, position.sense().joint_effort, atol=1e-9)
    # set_targets switches back to the position actuators (the default behaviour is untouched).
    motor.set_targets(DEFAULT)
    motor.step(1)
    assert motor.motor_command is None
    np.testing.assert_array_equal(motor.model.actuator_gainprm, position.model.actuator_gainprm)
    with pytest.raises(ValueError, match="kp"):
        motor.set_motor_command(MotorCommand(q=DEFAULT, dq=np.zeros(12), kp=np.full(12, np.nan), kd=KD,
                                             tau=np.zeros(12)))  # fmt: skip


def test_firmware_law_honours_pos_stop_vel_stop_and_brake():
    cmd = targets_to_motor_cmd(DEFAULT, 50.0, 3.0, dq_targets=0.5, tau_ff=1.5, contract=CONTRACT)
    cmd.q[:12], cmd.dq[:12] = POS_STOP_F, VEL_STOP_F  # both terms off: pure feed-forward torque
    law = motor_command_from_low_cmd(cmd, CONTRACT)
    np.testing.assert_array_equal(law.kp, 0.0)
    np.testing.assert_array_equal(law.kd, 0.0)
    np.testing.assert_array_equal(law.tau, 1.5)
    emulated = EmulatedA1(CONTRACT)
    emulated.set_motor_command(law)
    emulated.step(3)
    np.testing.assert_allclose(emulated.sense().joint_effort, 1.5)  # the applied torque is exactly tau_ff
    brake = motor_command_from_low_cmd(brake_cmd(), CONTRACT, brake_kd=2.5)
    np.testing.assert_array_equal(brake.kd, 2.5)
    np.testing.assert_array_equal(brake.kp, 0.0)
    np.testing.assert_array_equal(brake.tau, 0.0)


def test_replies_low_state_in_sdk_order_with_imu_feet_and_tick():
    with UdpEmulatedA1(CONTRACT, bind=("127.0.0.1", 0)) as emulator, _client() as sock:
        sock.sendto(pack_low_cmd(targets_to_motor_cmd(DEFAULT, KP, KD, contract=CONTRACT)), emulator.address)
        first = _latest_state(sock)
        start = emulator.robot.time  # simulated time: a busy box lets the emulator fall behind the wall clock
        wait_for(lambda: emulator.robot.time - start >= 1.5, 10.0, "1.5 s of simulated time (settled after ~1 s)")
        state = _latest_state(sock)
        with emulator.lock:
            truth = emulator.sensors
        q, dq, tau = motor_state_to_contract(state, CONTRACT)
        # At rest, the packet (a period or two older) and the emulator's newest sample agree joint by joint.
        np.testing.assert_allclose(q, truth.joint_pos, atol=0.01)
        np.testing.assert_allclose(tau, truth.joint_effort, atol=0.5)
        np.testing.assert_allclose(q, DEFAULT, atol=0.3)
        np.testing.assert_allclose(state.quaternion, truth.orientation_wxyz, atol=0.01)
        np.testing.assert_allclose(state.rpy, rpy_from_wxyz(state.quaternion), atol=1e-5)
        assert state.accelerometer[2] > 8.0, "standing still: the specific force points up in the trunk frame"
        feet = foot_forces_newtons(state, robot.FOOT_NAMES)
        assert (feet > 10).all() and abs(feet.sum() - truth.foot_forces.sum()) < 40, (feet, truth.foot_forces)
        assert state.tick > first.tick and state.tick % 2000 == 0, "microseconds, one 500 Hz period per packet"
        assert emulator.stats.ok >= 1 and emulator.counters["states_sent"] > 100


def test_bad_packets_are_counted_and_never_applied_the_last_command_holds():
    with UdpEmulatedA1(CONTRACT, bind=("127.0.0.1", 0)) as emulator, _client() as sock:
        good = targets_to_motor_cmd(DEFAULT + 0.05, KP, KD, contract=CONTRACT)
        sock.sendto(pack_low_cmd(good), emulator.address)
        wait_for(lambda: emulator.robot.motor_command is not None, 2.0, "the first command applied")
        held = emulator.robot.motor_command
        bad = targets_to_motor_cmd(DEFAULT - 0.5, 80.0, KD, contract=CONTRACT)
        packet = bytearray(pack_low_cmd(bad))
        corrupted = bytes(packet[:-1]) + bytes([packet[-1] ^ 0xFF])
        wrong_level = LowCmd(**{**bad.__dict__, "level_flag": 0x00})
        nan_values = targets_to_motor_cmd(DEFAULT, KP, KD, contract=CONTRACT)
        nan_values.q[0] = np.nan
        for datagram in (corrupted, bytes(packet[:200]), pack_low_cmd(wrong_level), pack_low_cmd(nan_values)):
            sock.sendto(datagram, emulator.address)
        wait_for(lambda: emulator.counters["datagrams"] >= 5, 2.0, "the bad packets to be read")
        with emulator.lock:  # a receive pass reads, counts, validates and applies under the lock
            assert emulator.stats.as_dict() == {"ok": 2, "short_packets": 1, "crc_errors": 1, "wrong_level": 1}
            assert emulator.counters["rejected_values"] == 1 and emulator.counters["applied"] == 1
            assert emulator.robot.motor_command is held
            np.testing.assert_allclose(emulator.robot.motor_command.q, DEFAULT + 0.05, atol=1e-6)


def test_mode_zero_damps():
    with UdpEmulatedA1(CONTRACT, bind=("127.0.0.1", 0)) as emulator, _client() as sock:
        hold = targets_to_motor_cmd(DEFAULT, KP, KD, contract=CONTRACT)
        sock.sendto(pack_low_cmd(hold), emulator.address)
        time.sleep(0.3)
        standing = _latest_state(sock)
        brake = brake_cmd()
        assert (brake.mode == MODE_BRAKE).all()
        sock.sendto(pack_low_cmd(brake), emulator.address)
        wait_for(lambda: emulator.robot.motor_command is not None and emulator.robot.motor_command.kp.max() == 0,
                 2.0, "the brake applied")  # fmt: skip
        sample: list = []

        def legs_move() -> bool:  # they give way under the trunk's weight, slowed only by the brake
            with emulator.lock:
                sample[:] = [emulator.robot.sense()]
            return np.abs(sample[0].joint_vel).max() > 0.05

        wait_for(legs_move, 2.0, "the braked legs to move")
        np.testing.assert_allclose(sample[0].joint_effort, -BRAKE_KD * sample[0].joint_vel, atol=1e-9)
        q_stand, _, _ = motor_state_to_contract(standing, CONTRACT)
        wait_for(
            lambda: np.abs(motor_state_to_contract(_latest_state(sock), CONTRACT)[0] - q_stand).max() > 0.1,
            2.0,
            "the legs to fold (no position term)",
        )


# ---- the ROS node in udp mode ---------------------------------------------------------------------------------
def test_emulator_node_udp_interface_publishes_only_ground_truth_and_resets(ros_graph):
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_srvs.srv import Trigger

    from robot_bridge import qos
    from robot_bridge.emulator_node import EmulatorNode

    overrides = [
        Parameter("interface", value="udp"),
        Parameter("udp_port", value=0),
        Parameter("sensor_noise", value=1.0),
    ]
    emulator = ros_graph.add(EmulatorNode(context=ros_graph.context, parameter_overrides=overrides))
    probe = ros_graph.add(Node("probe", context=ros_graph.context))
    truth: list = []
    probe.create_subscription(Odometry, "ground_truth/odom", truth.append, qos.SENSOR)
    wait_for(lambda: len(truth) > 5, 10.0, "ground_truth/odom")
    topics = dict(probe.get_publisher_names_and_types_by_node("emulator_node", "/"))
    assert "/ground_truth/odom" in topics
    for absent in ("/joint_states", "/imu", "/foot_contacts", "/odom"):
        assert absent not in topics, topics
    assert not probe.get_subscriber_names_and_types_by_node("emulator_node", "/") or all(
        name != "/joint_targets" for name, _ in probe.get_subscriber_names_and_types_by_node("emulator_node", "/")
    )
    # Drive it over UDP into the brake; the legs fold; ~/reset stands it up again.
    with _client() as sock:
        sock.sendto(pack_low_cmd(brake_cmd()), emulator.udp.address)
        wait_for(lambda: truth[-1].pose.pose.position.z < 0.2, 3.0, "the braked trunk to sink under 0.2 m")
        client = probe.create_client(Trigger, "/emulator_node/reset")
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 5.0, "the reset response")
        assert future.result().success
        with emulator.udp.lock:
            np.testing.assert_allclose(emulator.robot.sense().joint_pos, DEFAULT, atol=0.05)
            assert emulator.robot.motor_command is None and emulator.robot.data.qpos[2] > 0.3
    # The ground truth carries none of the sensor noise that the LowStates do: hung in the air, exactly at rest.
    with emulator.udp.lock:
        emulator.robot.hang(1.0)
    hung = lambda: [m.twist.twist for m in list(truth) if m.pose.pose.position.z == 1.0]
    wait_for(lambda: len(hung()) >= 5, 5.0, "ground truth of the hung robot")
    assert all(t.linear.x == t.linear.y == t.linear.z == t.angular.x == t.angular.y == t.angular.z == 0 for t in hung())
    with emulator.udp.lock:
        assert np.abs(emulator.udp.sensors.joint_vel).max() > 0.1, "what the LowState carries is noisy"


def test_emulator_node_refuses_an_unknown_interface(ros_graph):
    from rclpy.parameter import Parameter

    from robot_bridge.emulator_node import EmulatorNode

    with pytest.raises(ValueError, match="interface"):
        EmulatorNode(context=ros_graph.context, parameter_overrides=[Parameter("interface", value="can")])
