"""The robot-side observation equals the simulator's for the same MuJoCo state (noise off), joints by name."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from a1_common.sim.a1_model import A1ModelInfo, build_a1_model, default_qpos
from a1_common.task import batch_math
from a1_common.task.observations import ObservationBuilder, body_state
from a1_contract import get_contract
from robot_bridge.observation import MissingJointsError, ObservationAssembler, projected_gravity_from_xyzw


def random_state(contract, seed: int):
    """A tilted, moving A1 state built on the simulator's model: (qpos, qvel, trunk COM, model info)."""
    model = build_a1_model(contract)
    info = A1ModelInfo.of(model, contract)
    rng = np.random.default_rng(seed)
    qpos = default_qpos(model, contract, info)
    axis = rng.normal(size=3)
    angle = rng.uniform(0.1, 0.6)
    qpos[3:7] = np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis / np.linalg.norm(axis)])
    qpos[info.qpos_joints] += rng.uniform(-0.3, 0.3, 12)
    qvel = rng.normal(0.0, 1.0, model.nv)
    trunk_com = model.body_ipos[info.trunk_body].copy()
    return qpos, qvel, trunk_com, info, rng


@pytest.mark.parametrize("variant", ["isaaclab3", "no_base_lin_vel"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_simulator_observation(variant, seed):
    contract = get_contract(variant)
    qpos, qvel, trunk_com, info, rng = random_state(contract, seed)
    state = body_state(qpos[None], qvel[None], trunk_com[None], info)
    command = rng.uniform(-1, 1, 3)
    action = rng.uniform(-2, 2, 12)
    expected = ObservationBuilder(contract)(state, command[None], action[None], rng=None)[0]

    # What the ROS messages carry: a JointState in another joint order, the IMU quaternion in (x, y, z, w).
    order = rng.permutation(12)
    names = [contract.joint_names[i] for i in order] + ["some_other_joint"]
    joint_pos = list(qpos[info.qpos_joints][order]) + [9.0]
    joint_vel = list(qvel[info.qvel_joints][order]) + [9.0]
    w, x, y, z = qpos[3:7]
    assembler = ObservationAssembler(contract)
    got = assembler.build(
        joint_pos=assembler.joints.reorder(names, joint_pos, "position"),
        joint_vel=assembler.joints.reorder(names, joint_vel, "velocity"),
        projected_gravity=projected_gravity_from_xyzw((x, y, z, w)),
        base_ang_vel=qvel[3:6],
        command=command,
        last_action=action,
        base_lin_vel=state["lin_vel_b"][0] if assembler.needs_base_lin_vel else None,
    )
    assert got.dtype == np.float32 and got.shape == (contract.obs_dim,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert assembler.needs_base_lin_vel == (variant == "isaaclab3")


def test_projected_gravity_matches_mujoco_rotation_and_the_simulator():
    contract = get_contract()
    qpos, _, _, _, _ = random_state(contract, 5)
    for seed in range(20):
        quat = np.random.default_rng(seed).normal(size=4)
        quat /= np.linalg.norm(quat)
        w, x, y, z = quat
        np.testing.assert_allclose(projected_gravity_from_xyzw((x, y, z, w)),
                                   batch_math.projected_gravity(quat[None])[0], rtol=0, atol=1e-15)  # fmt: skip
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, qpos[3:7])
    w, x, y, z = qpos[3:7]
    expected = rotation.reshape(3, 3).T @ np.array([0.0, 0.0, -1.0])
    np.testing.assert_allclose(projected_gravity_from_xyzw((x, y, z, w)), expected, atol=1e-12)
    np.testing.assert_allclose(projected_gravity_from_xyzw((0, 0, 0, 2.0)), [0, 0, -1], atol=1e-12)


def test_missing_joints_and_velocities_are_named():
    assembler = ObservationAssembler(get_contract())
    names = list(assembler.joints.joint_names)
    with pytest.raises(MissingJointsError, match=r"lacks contract joints \[.RR_calf_joint.\]"):
        assembler.joints.reorder(names[:-1], np.zeros(11), "position")
    with pytest.raises(MissingJointsError, match="velocity"):
        assembler.joints.reorder(names, [], "velocity")
    with pytest.raises(ValueError, match="base_lin_vel"):
        assembler.build(
            joint_pos=np.zeros(12),
            joint_vel=np.zeros(12),
            projected_gravity=[0, 0, -1],
            base_ang_vel=[0, 0, 0],
            command=[0, 0, 0],
            last_action=np.zeros(12),
        )
