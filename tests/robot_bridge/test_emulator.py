"""The emulated A1 without ROS: same model and PD as the simulator, ground truth in the sim's frames, the gap."""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import pytest

from a1_common.sim.a1_model import build_a1_model
from a1_contract import get_contract
from robot_bridge.emulator import DynamicsGap, EmulatedA1, Sensors

CONTRACT = get_contract()
DEFAULT = np.asarray(CONTRACT.default_joint_pos)


def test_same_model_and_pd_as_the_simulator():
    robot = EmulatedA1(CONTRACT)
    sim = build_a1_model(CONTRACT)
    assert robot.model.opt.timestep == CONTRACT.sim_dt
    for name in ("actuator_gainprm", "actuator_biasprm", "actuator_forcerange", "body_mass", "geom_friction",
                 "jnt_range", "dof_armature"):  # fmt: skip
        np.testing.assert_array_equal(getattr(robot.model, name), getattr(sim, name), err_msg=name)


def test_stands_at_the_default_pose_and_reports_ground_truth_in_the_trunk_frame():
    robot = EmulatedA1(CONTRACT)
    rng = np.random.default_rng(0)
    robot.step(400)  # 2 s holding the default pose
    s = robot.sense()
    assert not s.trunk_contact and robot.trunk_contacts == 0
    assert 0.2 < s.position[2] < 0.4
    np.testing.assert_allclose(s.joint_pos, DEFAULT, atol=0.3)
    assert s.foot_forces.min() > 10.0, "all four feet carry the robot"
    upright = robot.data.xmat[robot.info.trunk_body].reshape(3, 3).T @ [0.0, 0.0, 9.81]
    np.testing.assert_allclose(s.linear_acceleration, upright, atol=0.5)  # nearly at rest: specific force ~ -g
    # A moving state: the body-frame COM velocity equals MuJoCo's own, rotated into the trunk frame.
    robot.data.qvel[:] = rng.normal(0, 0.5, robot.model.nv)
    robot.data.qpos[3:7] = np.array([0.98, 0.1, -0.1, 0.15]) / np.linalg.norm([0.98, 0.1, -0.1, 0.15])
    s = robot.sense()
    velocity = np.zeros(6)
    mujoco.mj_objectVelocity(robot.model, robot.data, mujoco.mjtObj.mjOBJ_BODY, robot.info.trunk_body, velocity, 0)
    rotation = robot.data.xmat[robot.info.trunk_body].reshape(3, 3)
    np.testing.assert_allclose(s.linear_velocity, rotation.T @ velocity[3:], atol=1e-9)
    np.testing.assert_allclose(s.angular_velocity, rotation.T @ velocity[:3], atol=1e-9)
    np.testing.assert_array_equal(s.orientation_wxyz, robot.data.qpos[3:7])


def test_targets_are_applied_after_the_action_latency():
    robot = EmulatedA1(CONTRACT, DynamicsGap(action_latency_s=0.02))
    robot.set_targets(DEFAULT + 0.1)
    robot.step(3)
    np.testing.assert_array_equal(robot.data.ctrl[:12], DEFAULT)
    robot.step(2)
    np.testing.assert_array_equal(robot.data.ctrl[:12], DEFAULT + 0.1)
    with pytest.raises(ValueError, match="finite"):
        robot.set_targets(np.full(12, np.nan))


def test_gap_parameters_change_the_dynamics():
    nominal = EmulatedA1(CONTRACT)
    gap = EmulatedA1(CONTRACT, DynamicsGap(mass_scale=1.5, friction=0.3, motor_strength=0.5))
    trunk = nominal.info.trunk_body
    assert gap.model.body_mass[trunk] == pytest.approx(1.5 * nominal.model.body_mass[trunk])
    assert (gap.model.geom_friction[:, 0] == 0.3).all()
    for robot in (nominal, gap):
        robot.data.qpos[robot.info.qpos_joints] = DEFAULT
        robot.data.ctrl[:12] = DEFAULT + 0.1
        mujoco.mj_forward(robot.model, robot.data)
    np.testing.assert_allclose(gap.data.actuator_force, 0.5 * nominal.data.actuator_force)


def test_sensor_noise_is_the_training_noise_times_the_factor():
    quiet, noisy = EmulatedA1(CONTRACT), EmulatedA1(CONTRACT, DynamicsGap(sensor_noise=1.0, seed=3))
    a, b = quiet.sense(), noisy.sense()
    joint_noise = next(t.noise for t in CONTRACT.obs_terms if t.name == "joint_pos")
    difference = np.abs(b.joint_pos - a.joint_pos)
    assert 0 < difference.max() <= joint_noise
    assert np.abs(b.orientation_wxyz - a.orientation_wxyz).max() > 0
    np.testing.assert_array_equal(quiet.sense().joint_pos, a.joint_pos)


def test_sense_pair_gives_the_noise_free_truth_of_the_same_instant():
    noisy, twin = (EmulatedA1(CONTRACT, DynamicsGap(sensor_noise=1.0, seed=3)) for _ in range(2))
    quiet = EmulatedA1(CONTRACT)
    for robot in (noisy, twin, quiet):  # the noise changes what is measured, never the physics
        robot.set_targets(DEFAULT + 0.1)
        robot.step(40)
    measured, truth = noisy.sense_pair()
    reference = quiet.sense()
    for field in dataclasses.fields(Sensors):
        np.testing.assert_array_equal(getattr(truth, field.name), getattr(reference, field.name), err_msg=field.name)
    for name in ("joint_pos", "joint_vel", "orientation_wxyz", "angular_velocity", "linear_velocity"):
        assert np.abs(getattr(measured, name) - getattr(truth, name)).max() > 0, name
    np.testing.assert_array_equal(measured.position, truth.position)
    # sense() is the measured half, with the same noise stream
    np.testing.assert_array_equal(twin.sense().joint_vel, measured.joint_vel)
    measured, truth = quiet.sense_pair()
    assert measured is truth


def test_ground_truth_topics_carry_no_sensor_noise(ros_graph):
    """Through ROS, with the training noise on: hung in the air at the default pose the robot is exactly at rest,
    and so is its ground truth on every ground_truth/* topic, while the measured topics are noisy."""
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Imu, JointState

    from robot_bridge import qos
    from robot_bridge.emulator_node import EmulatorNode
    from tests.robot_bridge.conftest import wait_for

    emulator = ros_graph.add(
        EmulatorNode(context=ros_graph.context, parameter_overrides=[Parameter("sensor_noise", value=1.0)])
    )
    probe = ros_graph.add(Node("truth_probe", context=ros_graph.context))
    topics = {"odom": Odometry, "joint_states": JointState, "ground_truth/odom": Odometry,
              "ground_truth/joint_states": JointState, "ground_truth/imu": Imu}  # fmt: skip
    received: dict[str, dict] = {topic: {} for topic in topics}
    for topic, kind in topics.items():  # by stamp: every message of one sample has the same
        store = received[topic]
        probe.create_subscription(kind, topic, lambda m, s=store: s.__setitem__(_key(m), m), qos.SENSOR)
    with emulator._lock:
        emulator.robot.reset()
        emulator.robot.hang(1.0)

    def hung() -> set:  # samples of the hung robot (trunk exactly at 1 m) that every topic delivered
        stamps = {k for k, m in list(received["ground_truth/odom"].items()) if m.pose.pose.position.z == 1.0}
        return stamps.intersection(*(set(store) for store in received.values()))

    wait_for(lambda: len(hung()) >= 20, 10.0, "20 samples of the hung robot on every topic")
    stamps = sorted(hung())
    truth = [received["ground_truth/odom"][k].twist.twist for k in stamps]
    assert np.abs([_xyz(t.linear) + _xyz(t.angular) for t in truth]).max() == 0
    assert np.abs([_xyz(received["ground_truth/imu"][k].angular_velocity) for k in stamps]).max() == 0
    joints = [received["ground_truth/joint_states"][k] for k in stamps]
    assert joints[0].name == list(CONTRACT.joint_names)
    assert np.abs([m.velocity for m in joints]).max() == 0
    np.testing.assert_array_equal(joints[-1].position, DEFAULT)
    measured = [_xyz(received["odom"][k].twist.twist.linear) for k in stamps]
    assert np.abs(measured).max() > 0.02, "the measured odom carries the noise"
    assert np.abs([received["joint_states"][k].velocity for k in stamps]).max() > 0.5


def _key(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def _xyz(vector) -> tuple[float, float, float]:
    return vector.x, vector.y, vector.z
