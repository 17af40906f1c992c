"""Build the MuJoCo A1 from the official Unitree URDF (``pybullet_data/a1/a1.urdf``) with MjSpec.

No hand-copied robot file: the URDF gives links, inertias, collision shapes and joint limits; this
module adds what a URDF cannot say (free base joint, floor, PD actuators with the contract's gains,
contact sensors) and renames joints to the contract's names.

Model layout (what :class:`A1ModelInfo` indexes):
  * free joint ``root`` on ``trunk``: qpos[0:3] position, qpos[3:7] quaternion (w, x, y, z),
    qvel[0:3] world-frame linear velocity of the trunk origin, qvel[3:6] body-frame angular velocity;
  * 12 hinge joints named and ordered as ``contract.joint_names``;
  * 24 actuators: the first 12 take ``ctrl`` = joint target (rad), contract order; with the last 12 they
    make Isaac Lab's DC motor (PD, torque-speed limit, effort limit): :func:`add_dc_motor`;
  * sensors: touch on the trunk box, touch at each foot, total actuator torque per joint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mujoco
import numpy as np

from a1_contract import TaskContract, robot

# Gear of the 12 PD actuators of the DC motor model (see add_dc_motors).
PD_GEAR = 2.0

# URDF link holding each leg's toe sphere (fused into the calf body when the model compiles).
_URDF_TOE_BODY = {leg: f"{leg}_toe" for leg in robot.LEGS}


def urdf_path() -> str:
    """Path of the official A1 URDF inside the installed ``pybullet`` wheel."""
    try:
        import pybullet_data
    except ImportError as exc:  # pragma: no cover - pybullet is a hard dependency
        raise RuntimeError("the A1 URDF ships in the 'pybullet' wheel: pip install pybullet") from exc
    path = os.path.join(pybullet_data.getDataPath(), "a1", "a1.urdf")
    if not os.path.exists(path):
        raise FileNotFoundError(f"A1 URDF not found at {path}")
    return path


@dataclass(frozen=True)
class A1ModelInfo:
    """Indices into a compiled A1 model, all in contract joint order."""

    qpos_joints: np.ndarray
    """(12,) qpos addresses of the contract's joints."""
    qvel_joints: np.ndarray
    """(12,) qvel addresses."""
    trunk_body: int
    sensor_trunk_touch: int
    """sensordata address of the trunk touch sensor (normal force, N)."""
    sensor_foot_touch: np.ndarray
    """(4,) sensordata addresses of the FL, FR, RL, RR foot touch sensors."""
    sensor_actuator_force: np.ndarray
    """(12,) sensordata addresses of the joint actuator torques (the DC motor's output, N*m)."""
    nstate: int
    """Size of the mjSTATE_FULLPHYSICS state vector."""

    @classmethod
    def of(cls, model: mujoco.MjModel, contract: TaskContract) -> A1ModelInfo:
        def jid(name: str) -> int:
            joint_id: int = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            return joint_id

        def sens(name: str) -> int:
            return int(model.sensor_adr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, name)])

        return cls(
            qpos_joints=np.array([model.jnt_qposadr[jid(j)] for j in contract.joint_names]),
            qvel_joints=np.array([model.jnt_dofadr[jid(j)] for j in contract.joint_names]),
            trunk_body=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, robot.BASE_BODY),
            sensor_trunk_touch=sens("trunk_touch"),
            sensor_foot_touch=np.array([sens(f"{foot}_touch") for foot in robot.FOOT_NAMES]),
            sensor_actuator_force=np.array([sens(f"{j}_torque") for j in contract.joint_names]),
            nstate=mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS),
        )


def build_a1_spec(contract: TaskContract, *, friction: float | None = None) -> mujoco.MjSpec:
    """An editable MjSpec of the A1 on a flat floor implementing ``contract``'s robot side.

    Args:
        contract: joint names, gains, effort limits, armature, physics dt come from here.
        friction: Coulomb friction of robot-ground contacts; defaults to the contract's static
            friction (lower end of the range; randomized per env by the simulator).
    """
    spec = mujoco.MjSpec.from_file(urdf_path())
    # MuJoCo's URDF reader drops <visual> elements while parsing; a1_common.sim.visual_model adds the meshes back.
    spec.compiler.fusestatic = True
    spec.option.timestep = contract.sim_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # PhysX (Isaac Lab's backend for this task) has rigid Coulomb friction; MuJoCo's soft contacts let
    # loaded feet creep. Elliptic cones with impratio 10 cut the hip drift of a standing A1 over 10 s
    # from ~0.10 rad (pyramidal, impratio 1) to ~0.025 rad at the same cost while standing; with random
    # actions (robots on the ground, many contacts) a policy step costs ~28% more (measured on
    # this project's 2-core CPU box).
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    mu = contract.randomization.static_friction_range[0] if friction is None else friction

    trunk = spec.body(robot.BASE_BODY)
    if trunk is None:
        raise RuntimeError(f"URDF has no body {robot.BASE_BODY!r}")
    trunk.add_freejoint(name="root")
    trunk.pos = [0.0, 0.0, contract.init_base_height]

    # Robot geoms collide with the floor only (Isaac Lab turns A1 self-collisions off). The floor takes
    # precedence in friction mixing so the contact uses exactly ``mu``.
    for geom in spec.geoms:
        if geom.contype or geom.conaffinity:
            geom.contype, geom.conaffinity = 1, 0
            geom.friction = [mu, 0.005, 0.0001]
    spec.worldbody.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[0, 0, 0.05],
        contype=0,
        conaffinity=1,
        priority=1,
        friction=[mu, 0.005, 0.0001],
        rgba=[0.45, 0.5, 0.55, 1.0],
    )
    spec.worldbody.add_light(pos=[0, 0, 3.0], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8])

    # Trunk contact: a touch site covering the trunk collision box (slightly enlarged).
    trunk_box = next(g for g in trunk.geoms if g.type == mujoco.mjtGeom.mjGEOM_BOX and g.size[0] > 0.05)
    trunk.add_site(
        name="trunk_touch",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=trunk_box.pos,
        size=np.asarray(trunk_box.size) * 1.05 + 0.005,
        group=4,
    )
    spec.add_sensor(
        name="trunk_touch", type=mujoco.mjtSensor.mjSENS_TOUCH, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="trunk_touch"
    )

    # Feet: the URDF's toe sphere (fused into the calf body) gets a touch site named like Isaac's foot.
    for leg, foot in zip(robot.LEGS, robot.FOOT_NAMES, strict=True):
        toe_body = spec.body(_URDF_TOE_BODY[leg])
        toe = next(g for g in toe_body.geoms if g.type == mujoco.mjtGeom.mjGEOM_SPHERE)
        toe.name = foot
        toe_body.add_site(
            name=foot, type=mujoco.mjtGeom.mjGEOM_SPHERE, pos=toe.pos, size=[toe.size[0] + 0.01, 0, 0], group=4
        )
        spec.add_sensor(
            name=f"{foot}_touch", type=mujoco.mjtSensor.mjSENS_TOUCH, objtype=mujoco.mjtObj.mjOBJ_SITE, objname=foot
        )

    # Joints: contract names, no passive damping/friction (Isaac Lab: friction 0), contract armature.
    for i, name in enumerate(contract.joint_names):
        joint = spec.joint(robot.URDF_JOINT_NAME[name])
        if joint is None:
            raise RuntimeError(f"URDF joint {robot.URDF_JOINT_NAME[name]!r} (contract {name!r}) not found")
        joint.name = name
        joint.damping = [0.0, 0.0, 0.0]
        joint.frictionloss = 0.0
        joint.armature = contract.armature
        low, high = contract.joint_pos_limits[i]
        joint.range = [low, high]
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.actfrcrange = [-contract.effort_limit[i], contract.effort_limit[i]]
        spec.add_sensor(
            name=f"{name}_torque",
            type=mujoco.mjtSensor.mjSENS_JOINTACTFRC,
            objtype=mujoco.mjtObj.mjOBJ_JOINT,
            objname=name,
        )
    add_dc_motors(spec, contract)
    return spec


def add_dc_motors(spec: mujoco.MjSpec, contract: TaskContract) -> None:
    """Isaac Lab's DC motor (``DCMotorCfg``) on one joint, built from MuJoCo actuators so it runs inside the rollout.

    Isaac Lab: tau = clip(kp (target - q) - kd dq, lo(dq), hi(dq)) with hi = clip(S (1 - dq / v), 0, E) and
    lo = clip(S (-1 - dq / v), -E, 0); saturation S = effort limit E. With c = S / v that is
    ``clip(pd + c dq, -S, S) - c dq``, clipped to +-E: actuator ``name`` is the PD plus ``c dq``, clamped to +-S
    (its ``ctrl`` is the joint target); actuator ``<name>_dc`` adds ``-c dq`` (no control, gain 0); the joint's
    actuator-force range (set with the joint) clamps their sum to +-E. Velocity terms are integrated implicitly
    (implicitfast).
    Beyond ``|dq| > v`` Isaac Lab's torque is 0 in the direction of motion, here it turns slightly negative.
    """
    joints = contract.joint_names
    c = np.asarray(contract.effort_limit) / np.asarray(contract.velocity_limit)
    for i, name in enumerate(joints):  # actuators 0..11: ctrl = the joint targets, contract order
        # Gear G: length G q, force f, joint torque G f. f = kp/G ctrl - kp/G^2 (G q) + (c - kd)/G^2 (G dq), so the
        # joint gets kp (ctrl - q) + (c - kd) dq, clamped to +-S. With G = 1 MuJoCo's compiler would read the positive
        # velocity coefficient of this position-like actuator as a damping ratio.
        g = PD_GEAR
        pd = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        pd.gear[0] = g
        pd.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        pd.gainprm[0] = contract.kp[i] / g
        pd.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        pd.biasprm[:3] = [0.0, -contract.kp[i] / g**2, (c[i] - contract.kd[i]) / g**2]
        pd.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        pd.forcerange = [-contract.effort_limit[i] / g, contract.effort_limit[i] / g]
        pd.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    for i, name in enumerate(joints):  # actuators 12..23: -c dq, no control
        back_emf = spec.add_actuator(name=f"{name}_dc", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        back_emf.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        back_emf.gainprm[0] = 0.0
        back_emf.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        back_emf.biasprm[:3] = [0.0, 0.0, -c[i]]
        back_emf.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE


def build_a1_model(contract: TaskContract, *, friction: float | None = None) -> mujoco.MjModel:
    """Compiled :func:`build_a1_spec`."""
    return build_a1_spec(contract, friction=friction).compile()


def default_qpos(model: mujoco.MjModel, contract: TaskContract, info: A1ModelInfo | None = None) -> np.ndarray:
    """qpos of the robot standing at the contract's default pose at the initial base height."""
    info = info or A1ModelInfo.of(model, contract)
    qpos = np.array(model.qpos0, dtype=np.float64)
    qpos[0:3] = (0.0, 0.0, contract.init_base_height)
    qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
    qpos[info.qpos_joints] = contract.default_joint_pos
    return qpos
