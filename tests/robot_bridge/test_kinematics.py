"""A1 leg kinematics (robot_bridge/kinematics.py) against the compiled MuJoCo model and finite differences.

The leg geometry constants in ``a1_contract.robot`` are held against the URDF-built model here too.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from a1_common.sim.a1_model import A1ModelInfo, build_a1_spec
from a1_contract import get_contract, robot
from robot_bridge.kinematics import LegKinematics

CONTRACT = get_contract()


@pytest.fixture(scope="module")
def sim():
    model = build_a1_spec(CONTRACT).compile()
    return model, mujoco.MjData(model), A1ModelInfo.of(model, CONTRACT)


def _random_joints(rng: np.random.Generator) -> np.ndarray:
    limits = np.asarray(CONTRACT.joint_pos_limits)
    return rng.uniform(limits[:, 0], limits[:, 1])


def _random_pose(model, data, info, rng, q, dq=None) -> None:
    data.qpos[:] = model.qpos0
    data.qpos[0:3] = rng.normal(0, 0.3, 3)
    quat = rng.normal(size=4)
    data.qpos[3:7] = quat / np.linalg.norm(quat)
    data.qpos[info.qpos_joints] = q
    data.qvel[:] = 0.0
    if dq is not None:
        data.qvel[0:6] = rng.normal(0, 1.0, 6)
        data.qvel[info.qvel_joints] = dq
    mujoco.mj_forward(model, data)


def test_foot_positions_match_mujoco_feet_at_random_joint_angles(sim):
    model, data, info = sim
    kin = LegKinematics(CONTRACT.joint_names)
    sites = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, foot) for foot in robot.FOOT_NAMES]
    geoms = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, foot) for foot in robot.FOOT_NAMES]
    assert min(sites) >= 0 and min(geoms) >= 0, "the model names its feet like robot.FOOT_NAMES"
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        q = _random_joints(rng)
        _random_pose(model, data, info, rng, q)
        rotation = data.xmat[info.trunk_body].reshape(3, 3)
        for frame in (data.site_xpos[sites], data.geom_xpos[geoms]):  # foot site and foot sphere: same centre
            in_trunk = (frame - data.xpos[info.trunk_body]) @ rotation
            worst = max(worst, float(np.abs(kin.foot_positions(q) - in_trunk).max()))
    assert worst < 1e-3, f"foot position error {worst * 1e3:.3f} mm"
    assert worst < 1e-9, "same geometry as MuJoCo: agreement to rounding"


def test_jacobians_match_finite_differences_and_mujoco_velocities(sim):
    model, data, info = sim
    kin = LegKinematics(CONTRACT.joint_names)
    rng = np.random.default_rng(1)
    eps = 1e-6
    for _ in range(50):
        q = _random_joints(rng)
        jac = kin.foot_jacobians(q)
        for joint in range(12):
            step = np.zeros(12)
            step[joint] = eps
            column = (kin.foot_positions(q + step) - kin.foot_positions(q - step)) / (2 * eps)
            leg, part = np.argwhere(kin.leg_joints == joint)[0]
            np.testing.assert_allclose(jac[leg, :, part], column[leg], atol=1e-8)
            others = np.delete(np.arange(4), leg)
            np.testing.assert_allclose(column[others], 0.0, atol=1e-12)  # a joint moves its own foot only
        # Foot velocity relative to the trunk, and the calf's angular velocity, against MuJoCo's.
        dq = rng.normal(0, 3.0, 12)
        _random_pose(model, data, info, rng, q, dq)
        rotation = data.xmat[info.trunk_body].reshape(3, 3)
        # Free joint: world velocity of the trunk origin, body-frame angular velocity.
        trunk = np.concatenate([data.qvel[3:6], rotation.T @ data.qvel[0:3]])
        feet = kin.foot_positions(q)
        for leg, foot in enumerate(robot.FOOT_NAMES):
            site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, foot)
            velocity = np.zeros(6)
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_SITE, site, velocity, 0)
            relative = rotation.T @ velocity[3:] - trunk[3:] - np.cross(trunk[:3], feet[leg])
            np.testing.assert_allclose(kin.foot_velocities(q, dq)[leg], relative, atol=1e-9)
            calf = model.site_bodyid[site]
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, calf, velocity, 0)
            spin = rotation.T @ velocity[:3] - trunk[:3]
            np.testing.assert_allclose(kin.calf_angular_velocities(q, dq)[leg], spin, atol=1e-9)


def test_joints_are_matched_by_name_not_position():
    rng = np.random.default_rng(2)
    q = _random_joints(rng)
    names = list(CONTRACT.joint_names)
    order = rng.permutation(12)
    shuffled = LegKinematics([names[i] for i in order])
    np.testing.assert_array_equal(shuffled.foot_positions(q[order]), LegKinematics(names).foot_positions(q))
    with pytest.raises(ValueError, match="lack an A1 leg joint"):
        LegKinematics(names[:-1])
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        LegKinematics(names).foot_positions(q[:11])


def test_leg_geometry_constants_match_the_compiled_model(sim):
    model, _, info = sim

    def body(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)

    for leg in robot.LEGS:
        sx, sy = (1 if leg[0] == "F" else -1), (1 if leg[1] == "L" else -1)
        hip, thigh, calf = body(f"{leg}_hip"), body(f"{leg}_upper"), body(f"{leg}_lower")
        np.testing.assert_allclose(model.body_pos[hip], [sx * robot.HIP_OFFSET_X, sy * robot.HIP_OFFSET_Y, 0])
        np.testing.assert_allclose(model.body_pos[thigh], [0, sy * robot.THIGH_OFFSET_Y, 0])
        np.testing.assert_allclose(model.body_pos[calf], [0, 0, -robot.THIGH_LENGTH])
        foot = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{leg}_foot")
        np.testing.assert_allclose(model.geom_pos[foot], [0, 0, -robot.CALF_LENGTH])
        assert model.geom_size[foot][0] == pytest.approx(robot.FOOT_RADIUS)
    # MuJoCo fuses the massless-ish imu link into the trunk, which moves the COM by ~3 micrometres.
    np.testing.assert_allclose(model.body_ipos[info.trunk_body], robot.TRUNK_COM, atol=1e-5)
