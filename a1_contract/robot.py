"""Unitree A1 robot facts: joint order, default pose, limits, gains, SDK motor mapping.

Every number here carries its source. They are held against the compiled MuJoCo model built from
the official URDF (``tests/a1_contract/test_robot_facts.py``), so a wrong limit or a mis-ordered joint
fails a test instead of reaching the robot.

Sources, abbreviated below:
  [IL3]  Isaac Lab 3.0.0 wheel, ``isaaclab_assets/robots/unitree.py`` (``UNITREE_A1_CFG``) and
         ``isaaclab_tasks/contrib/velocity/config/a1/*`` (see ../shared/design/A1_TASK_CONTRACT.md).
  [URDF] ``pybullet_data/a1/a1.urdf`` (official Unitree A1 URDF shipped in the pybullet wheel).
  [SDK]  ``unitree_legged_sdk/include/unitree_legged_sdk/quadruped.h`` (motor indices FR_0 = 0 ...).
"""

from __future__ import annotations

LEGS: tuple[str, ...] = ("FL", "FR", "RL", "RR")
PARTS: tuple[str, ...] = ("hip", "thigh", "calf")

# Isaac Lab's PhysX public joint order: breadth-first from the root, grouped by joint type, legs in
# alphabetical order [IL3 ordering resolver; A1_TASK_CONTRACT.md section 3]. Policies trained in Isaac
# Lab (PhysX backend) and in our MuJoCo simulator share this order.
JOINT_NAMES: tuple[str, ...] = tuple(f"{leg}_{part}_joint" for part in PARTS for leg in LEGS)

# The URDF names thigh "upper" and calf "lower" [URDF]; the simulator renames by this table.
URDF_JOINT_NAME: dict[str, str] = {
    f"{leg}_{part}_joint": f"{leg}_{urdf_part}_joint"
    for leg in LEGS
    for part, urdf_part in zip(PARTS, ("hip", "upper", "lower"), strict=True)
}

# Unitree SDK motor order: FR, FL, RR, RL legs, each hip(0), thigh(1), calf(2) [SDK].
_SDK_LEG_ORDER: tuple[str, ...] = ("FR", "FL", "RR", "RL")


def sdk_motor_index(joint_name: str) -> int:
    """Unitree SDK motor index of one of our joints (by name, never by position)."""
    leg, part, _ = joint_name.split("_")
    return 3 * _SDK_LEG_ORDER.index(leg) + PARTS.index(part)


# Default joint positions (rad) [IL3 UNITREE_A1_CFG.init_state.joint_pos]:
# .*L_hip 0.1, .*R_hip -0.1, F[L,R]_thigh 0.8, R[L,R]_thigh 1.0, .*_calf -1.5.
DEFAULT_JOINT_POS: dict[str, float] = {
    name: {
        "hip": 0.1 if name[1] == "L" else -0.1,
        "thigh": 0.8 if name[0] == "F" else 1.0,
        "calf": -1.5,
    }[name.split("_")[1]]
    for name in JOINT_NAMES
}

# Joint position limits (rad) [URDF <limit>; same values in unitree_ros const.xacro and MuJoCo
# Menagerie a1.xml]. Isaac Lab takes them from its USD, which we cannot read ([U] in the notes).
JOINT_POS_LIMITS: dict[str, tuple[float, float]] = {
    name: {
        "hip": (-0.802851455917, 0.802851455917),
        "thigh": (-1.0471975512, 4.18879020479),
        "calf": (-2.69653369433, -0.916297857297),
    }[name.split("_")[1]]
    for name in JOINT_NAMES
}

# Isaac Lab soft joint-limit factor [IL3 UNITREE_A1_CFG.soft_joint_pos_limit_factor].
SOFT_JOINT_POS_LIMIT_FACTOR = 0.9

# DC motor actuator "base_legs" for all 12 joints [IL3 DCMotorCfg]:
KP = 25.0  # N*m/rad, stiffness
KD = 0.5  # N*m*s/rad, damping
EFFORT_LIMIT = 33.5  # N*m, saturation_effort = effort_limit
VELOCITY_LIMIT = 21.0  # rad/s, velocity at which the DC-motor torque falls to zero

# Rotor inertia reflected at the joint. Isaac Lab reads it from its USD ([U]); the URDF has none.
# MuJoCo Menagerie's a1.xml uses 0.01 kg*m^2, which we adopt for the simulated joints.
ARMATURE = 0.01

# Initial root position (m) [IL3 UNITREE_A1_CFG.init_state.pos = (0, 0, 0.42)].
INIT_BASE_HEIGHT = 0.42

BASE_BODY = "trunk"  # [IL3 a1/rough_env_cfg.py overrides "base" with "trunk"]
FOOT_NAMES: tuple[str, ...] = tuple(f"{leg}_foot" for leg in LEGS)  # [IL3 body regex ".*_foot"]

# Leg geometry [URDF joint origins], used by the leg kinematics of the body-velocity estimator
# (robot_bridge/kinematics.py; held against the compiled MuJoCo model in tests/robot_bridge/test_kinematics.py).
# All legs share the numbers up to the signs: front (+x) / rear (-x), left (+y) / right (-y).
HIP_OFFSET_X = 0.183  # m, trunk origin -> hip joint along x [URDF *_hip_joint origin xyz="+-0.183 +-0.047 0"]
HIP_OFFSET_Y = 0.047  # m, trunk origin -> hip joint along y [URDF *_hip_joint origin]
THIGH_OFFSET_Y = 0.08505  # m, hip joint -> thigh joint along y [URDF *_upper_joint origin xyz="0 +-0.08505 0"]
THIGH_LENGTH = 0.2  # m, thigh joint -> calf joint along -z [URDF *_lower_joint origin xyz="0 0 -0.2"]
CALF_LENGTH = 0.2  # m, calf joint -> foot sphere center along -z [URDF *_toe_fixed origin xyz="0 0 -0.2"]
FOOT_RADIUS = 0.02  # m, foot collision sphere [URDF *_toe <collision><sphere radius="0.02">]
# Trunk centre of mass in the trunk frame [URDF trunk <inertial><origin xyz="0.012731 0.002186 0.000515">]:
# the simulator's base_lin_vel is the velocity of this point (a1_common/task/observations.py body_state).
TRUNK_COM = (0.012731, 0.002186, 0.000515)  # m
