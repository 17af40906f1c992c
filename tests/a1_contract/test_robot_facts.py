"""Hold the contract's robot facts against the compiled MuJoCo model built from the official A1 URDF.

A wrong limit, a mis-ordered actuator or a mis-mapped joint name fails here instead of reaching the robot.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from a1_common.sim.a1_model import build_a1_model, default_qpos, urdf_path
from a1_contract import TaskContract, get_contract, robot

LEGS = ("FL", "FR", "RL", "RR")


@pytest.fixture(scope="module")
def contract() -> TaskContract:
    return get_contract()


@pytest.fixture(scope="module")
def model(contract: TaskContract) -> mujoco.MjModel:
    return build_a1_model(contract)


@pytest.fixture(scope="module")
def urdf() -> ET.Element:
    return ET.parse(urdf_path()).getroot()


def _jid(model: mujoco.MjModel, name: str) -> int:
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    assert jid >= 0, f"joint {name!r} not in model"
    return jid


def _urdf_masses(urdf: ET.Element) -> dict[str, float]:
    out = {}
    for link in urdf.iter("link"):
        mass = link.find("inertial/mass")
        out[link.get("name")] = float(mass.get("value")) if mass is not None else 0.0
    return out


def _standing_data(model: mujoco.MjModel, contract: TaskContract) -> mujoco.MjData:
    data = mujoco.MjData(model)
    data.qpos[:] = default_qpos(model, contract)
    mujoco.mj_kinematics(model, data)
    return data


# ---- joints ---------------------------------------------------------------------------------------------
def test_exactly_the_contract_hinge_joints(model: mujoco.MjModel, contract: TaskContract) -> None:
    hinges = [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]
    assert sorted(hinges) == sorted(contract.joint_names)
    assert len(hinges) == 12
    assert model.njnt == 13 and model.nu == 24, "12 PD actuators (ctrl = targets) + 12 back-EMF (DC motor)"


def test_free_joint_on_trunk(model: mujoco.MjModel) -> None:
    free = [i for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_FREE]
    assert len(free) == 1
    assert model.body(model.jnt_bodyid[free[0]]).name == robot.BASE_BODY
    assert model.jnt_qposadr[free[0]] == 0 and model.nq == 7 + 12 and model.nv == 6 + 12


def test_joint_ranges_equal_contract_and_urdf(model: mujoco.MjModel, contract: TaskContract, urdf) -> None:
    urdf_limits = {
        j.get("name"): (float(j.find("limit").get("lower")), float(j.find("limit").get("upper")))
        for j in urdf.iter("joint")
        if j.get("type") == "revolute"
    }
    for name, limits in zip(contract.joint_names, contract.joint_pos_limits, strict=True):
        jid = _jid(model, name)
        assert model.jnt_limited[jid]
        np.testing.assert_allclose(model.jnt_range[jid], limits, rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(urdf_limits[robot.URDF_JOINT_NAME[name]], limits, rtol=0, atol=1e-9, err_msg=name)


def test_joint_axes_and_chain_match_names(model: mujoco.MjModel, contract: TaskContract) -> None:
    """hip abducts about x; thigh and calf pitch about y; hip -> thigh -> calf is one chain per leg."""
    for leg in LEGS:
        hip, thigh, calf = (_jid(model, f"{leg}_{part}_joint") for part in robot.PARTS)
        np.testing.assert_allclose(model.jnt_axis[hip], [1, 0, 0], atol=1e-9)
        np.testing.assert_allclose(model.jnt_axis[thigh], [0, 1, 0], atol=1e-9)
        np.testing.assert_allclose(model.jnt_axis[calf], [0, 1, 0], atol=1e-9)
        hip_body, thigh_body, calf_body = (model.jnt_bodyid[j] for j in (hip, thigh, calf))
        assert model.body_parentid[hip_body] == model.body(robot.BASE_BODY).id
        assert model.body_parentid[thigh_body] == hip_body
        assert model.body_parentid[calf_body] == thigh_body
        assert model.body(hip_body).name.startswith(leg)


def test_default_pose_within_soft_limits(contract: TaskContract) -> None:
    soft = contract.soft_joint_pos_limits()
    default = np.asarray(contract.default_joint_pos)
    assert np.all(soft[:, 0] < default) and np.all(default < soft[:, 1])
    hard = np.asarray(contract.joint_pos_limits)
    assert np.all(hard[:, 0] < soft[:, 0]) and np.all(soft[:, 1] < hard[:, 1])


# ---- actuators --------------------------------------------------------------------------------------------
def test_actuators_in_contract_order_with_contract_gains(model: mujoco.MjModel, contract: TaskContract) -> None:
    """Actuators 0..11 (ctrl = targets) are the PD in contract order, 12..23 the DC motor's back-EMF term."""
    from a1_common.sim.a1_model import PD_GEAR as G

    names = list(contract.joint_names)
    assert [model.actuator(i).name for i in range(model.nu)] == names + [f"{n}_dc" for n in names]
    for i, name in enumerate(names):
        kp, kd, effort = contract.kp[i], contract.kd[i], contract.effort_limit[i]
        c = effort / contract.velocity_limit[i]
        for a in (i, i + 12):
            assert model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
            assert model.actuator_trnid[a, 0] == _jid(model, name), name
        # joint torque = G * (gain ctrl + b1 G q + b2 G dq): kp (ctrl - q) + (c - kd) dq, clamped to +-effort
        assert model.actuator_gear[i, 0] == G
        assert G * model.actuator_gainprm[i, 0] == pytest.approx(kp)
        assert model.actuator_biasprm[i, 0] == 0.0
        assert G**2 * model.actuator_biasprm[i, 1] == pytest.approx(-kp)
        assert G**2 * model.actuator_biasprm[i, 2] == pytest.approx(c - kd)
        assert model.actuator_forcelimited[i]
        np.testing.assert_allclose(G * model.actuator_forcerange[i], [-effort, effort])
        assert model.actuator_gainprm[i + 12, 0] == 0.0 and model.actuator_biasprm[i + 12, 2] == pytest.approx(-c)
        np.testing.assert_allclose(model.jnt_actfrcrange[_jid(model, name)], [-effort, effort])
        assert model.dof_armature[model.jnt_dofadr[_jid(model, name)]] == pytest.approx(contract.armature)


def test_timestep(model: mujoco.MjModel, contract: TaskContract) -> None:
    assert model.opt.timestep == contract.sim_dt


# ---- masses -----------------------------------------------------------------------------------------------
def test_trunk_and_total_mass_match_urdf(model: mujoco.MjModel, urdf: ET.Element) -> None:
    masses = _urdf_masses(urdf)
    # Links attached to the trunk by fixed joints (the IMU link) are fused into it by MuJoCo.
    fused = [
        j.find("child").get("link")
        for j in urdf.iter("joint")
        if j.get("type") == "fixed" and j.find("parent").get("link") == robot.BASE_BODY
    ]
    expected_trunk = masses[robot.BASE_BODY] + sum(masses[link] for link in fused)
    trunk_mass = model.body_mass[model.body(robot.BASE_BODY).id]
    assert trunk_mass == pytest.approx(expected_trunk, abs=1e-9)
    assert trunk_mass == pytest.approx(masses[robot.BASE_BODY], abs=2e-3)  # 4.713 kg in the URDF
    assert model.body_mass.sum() == pytest.approx(sum(masses.values()), abs=1e-9)


# ---- feet -------------------------------------------------------------------------------------------------
def _leg_bodies(model: mujoco.MjModel, leg: str) -> list[int]:
    hip_body = model.jnt_bodyid[_jid(model, f"{leg}_hip_joint")]
    out = []
    for b in range(model.nbody):
        a = b
        while a > 0 and a != hip_body:
            a = model.body_parentid[a]
        if a == hip_body:
            out.append(b)
    return out


@pytest.mark.parametrize("leg", LEGS)
def test_foot_is_lowest_point_of_its_leg_on_its_side(model: mujoco.MjModel, contract: TaskContract, leg: str) -> None:
    data = _standing_data(model, contract)
    site = model.site(f"{leg}_foot")
    foot = data.site_xpos[site.id]
    bodies = _leg_bodies(model, leg)
    assert model.site_bodyid[site.id] == model.jnt_bodyid[_jid(model, f"{leg}_calf_joint")]
    others = [data.xpos[b] for b in bodies]
    others += [
        data.geom_xpos[g]
        for g in range(model.ngeom)
        if model.geom_bodyid[g] in bodies and model.geom(g).name != f"{leg}_foot"
    ]
    assert len(others) >= 5
    assert all(foot[2] < p[2] - 0.05 for p in others), leg
    # The lowest point of the whole robot is one of the feet.
    geom_bottom = data.geom_xpos[1:, 2] - model.geom_rbound[1:]
    feet_z = [data.site_xpos[model.site(f"{lg}_foot").id][2] for lg in LEGS]
    assert min(feet_z) - 0.03 < geom_bottom.min() + 1e-9
    # Side: left legs at y > 0, front legs at x > 0; the foot stands below its hip, splayed outward.
    assert (foot[1] > 0) == (leg[1] == "L")
    assert (foot[0] > 0) == (leg[0] == "F")
    hip = data.xpos[model.body(model.jnt_bodyid[_jid(model, f"{leg}_hip_joint")]).id]
    thigh = data.xpos[model.jnt_bodyid[_jid(model, f"{leg}_thigh_joint")]]
    assert abs(foot[0] - hip[0]) < 0.1
    assert abs(foot[1]) > abs(thigh[1])  # hip default abducts outward (+0.1 left, -0.1 right)
    assert hip[2] - foot[2] > 0.2


def test_feet_level_at_default_pose(model: mujoco.MjModel, contract: TaskContract) -> None:
    data = _standing_data(model, contract)
    z = np.array([data.site_xpos[model.site(f"{leg}_foot").id][2] for leg in LEGS])
    assert np.ptp(z) < 0.02


# ---- one actuator moves one joint ---------------------------------------------------------------------
@pytest.mark.parametrize("name", robot.JOINT_NAMES)
def test_actuator_moves_exactly_its_joint(model: mujoco.MjModel, contract: TaskContract, name: str) -> None:
    m = build_a1_model(contract)
    m.opt.gravity[:] = 0.0
    data = mujoco.MjData(m)
    qpos0 = default_qpos(m, contract)
    qpos0[2] = 1.0  # trunk in the air, feet far from the floor
    data.qpos[:] = qpos0
    qadr = np.array([m.jnt_qposadr[_jid(m, j)] for j in contract.joint_names])
    data.ctrl[: contract.num_joints] = contract.default_joint_pos
    act = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
    i = contract.joint_names.index(name)
    low, high = contract.soft_joint_pos_limits()[i]
    delta = 0.2 if contract.default_joint_pos[i] + 0.2 < high else -0.2
    assert low < contract.default_joint_pos[i] + delta < high
    data.ctrl[act] += delta
    for _ in range(200):  # 1 s
        mujoco.mj_step(m, data)
        data.qpos[:7] = qpos0[:7]  # hold the free joint: fixed-base check
        data.qvel[:6] = 0.0
    moved = data.qpos[qadr] - qpos0[qadr]
    assert moved[i] == pytest.approx(delta, abs=0.03), name
    others = np.delete(moved, i)
    assert np.max(np.abs(others)) < 1e-3, (name, moved)


def test_the_joint_torque_follows_isaac_labs_dc_motor(contract: TaskContract) -> None:
    """tau = clip(kp (q* - q) - kd dq, lo, hi): hi = clip(S (1 - dq / v), 0, E), lo = clip(S (-1 - dq / v), -E, 0)."""
    from a1_common.sim.a1_model import A1ModelInfo

    m = build_a1_model(contract)
    info = A1ModelInfo.of(m, contract)
    data = mujoco.MjData(m)
    S, v, kp, kd = robot.EFFORT_LIMIT, robot.VELOCITY_LIMIT, robot.KP, robot.KD
    checked = 0
    for j in (0, 5, 10):
        for dq in np.linspace(-v, v, 9):
            for err in (-3.0, -0.6, -0.1, 0.0, 0.2, 0.8, 3.0):
                mujoco.mj_resetData(m, data)
                data.qpos[info.qpos_joints] = contract.default_joint_pos
                data.qvel[info.qvel_joints[j]] = dq
                data.ctrl[: contract.num_joints] = contract.default_joint_pos
                data.ctrl[j] += err
                mujoco.mj_forward(m, data)
                hi, lo = np.clip(S * (1 - dq / v), 0, S), np.clip(S * (-1 - dq / v), -S, 0)
                want = np.clip(kp * err - kd * dq, lo, hi)
                assert data.sensordata[info.sensor_actuator_force[j]] == pytest.approx(want, abs=1e-9), (j, dq, err)
                checked += abs(want) == pytest.approx(min(hi, -lo), abs=1e-9)
    assert checked > 20, "the torque-speed limit itself was exercised"
