"""The emulated A1 without ROS: same model and PD as the simulator, ground truth in the sim's frames, the gap."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from a1_contract import get_contract
from pretrain.sim.a1_model import build_a1_model
from robot_bridge.emulator import DynamicsGap, EmulatedA1

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
    np.testing.assert_array_equal(robot.data.ctrl, DEFAULT)
    robot.step(2)
    np.testing.assert_array_equal(robot.data.ctrl, DEFAULT + 0.1)
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
        robot.data.ctrl[:] = DEFAULT + 0.1
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
