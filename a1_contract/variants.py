"""Named contracts: Isaac Lab 3.0's A1 flat task (the default) and the variants built from it.

Variants are derived with :meth:`TaskContract.replace`, never by copying the contract. Values cite
the Isaac Lab 3.0.0 wheel (file paths in ../shared/design/A1_TASK_CONTRACT.md, section in brackets).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from a1_contract import robot
from a1_contract.components import (
    ActionBounds,
    CommandRanges,
    ContractError,
    DomainRandomization,
    ObsTerm,
    Terminations,
)
from a1_contract.contract import TaskContract

ISAACLAB3_TASK_ID = "IsaacContrib-Velocity-Flat-UnitreeA1"
ISAACLAB2_TASK_ID = "Isaac-Velocity-Flat-Unitree-A1-v0"

# ---- action bounds presets (raw action units, contract joint order) --------------------------------
# Raffin, "Getting SAC to work on a massive parallel simulator", Part II: 2.5/97.5 percentiles of the
# actions of a trained PPO policy on A1 flat (Isaac Lab 2.x, env action order = PhysX order [U]).
PPO_PERCENTILE_LOW = (-2.0, -0.4, -2.6, -1.3, -2.2, -1.9, -0.7, -0.4, -2.1, -2.4, -2.5, -1.7)
PPO_PERCENTILE_HIGH = (1.1, 2.6, 0.7, 1.9, 1.3, 2.6, 3.4, 3.8, 3.4, 3.4, 1.9, 2.1)


def ppo_percentile_bounds() -> ActionBounds:
    """The seed author's published A1 bounds (2.5/97.5 percentiles of trained PPO actions)."""
    return ActionBounds(PPO_PERCENTILE_LOW, PPO_PERCENTILE_HIGH, "ppo_percentile")


def isaaclab3_bounds() -> ActionBounds:
    """Isaac Lab 3.0's SB3 wrapper default: symmetric [-1, 1] (targets within 0.25 rad of default)."""
    return ActionBounds.symmetric(1.0, len(robot.JOINT_NAMES))


def joint_limit_bounds(contract: TaskContract) -> ActionBounds:
    """FastSAC's joint-limit-aware bounds: per joint max(|limit - default|) / action_scale, symmetric."""
    limits = np.asarray(contract.joint_pos_limits)
    default = np.asarray(contract.default_joint_pos)
    width = np.maximum(np.abs(limits[:, 0] - default), np.abs(limits[:, 1] - default)) / contract.action_scale
    return ActionBounds(tuple(-width), tuple(width), "joint_limits")


# ---- the base contract --------------------------------------------------------------------------
def isaaclab3_flat() -> TaskContract:
    """Isaac Lab 3.0.0 ``IsaacContrib-Velocity-Flat-UnitreeA1``, PhysX joint order."""
    joints = robot.JOINT_NAMES
    n = len(joints)
    obs_terms = (
        # [5] velocity_env_cfg.py ObservationsCfg.PolicyCfg, flat: height_scan removed.
        ObsTerm("base_lin_vel", 3, noise=0.1, source="sim: root COM lin. vel. in base frame; robot: estimator"),
        ObsTerm("base_ang_vel", 3, noise=0.2, source="sim: root ang. vel. in base frame; robot: IMU gyroscope"),
        ObsTerm("projected_gravity", 3, noise=0.05, source="unit gravity in base frame; robot: IMU orientation"),
        ObsTerm("velocity_commands", 3, source="(v_x, v_y, w_z) command; robot: joystick"),
        ObsTerm("joint_pos", n, noise=0.01, source="q - default_joint_pos; robot: encoders"),
        ObsTerm("joint_vel", n, noise=1.5, source="dq; robot: encoders"),
        ObsTerm("actions", n, source="previous raw action (zero after reset)"),
    )
    return TaskContract(
        name="a1_flat_isaaclab3",
        joint_names=joints,
        default_joint_pos=tuple(robot.DEFAULT_JOINT_POS[j] for j in joints),
        joint_pos_limits=tuple(robot.JOINT_POS_LIMITS[j] for j in joints),
        soft_joint_pos_limit_factor=robot.SOFT_JOINT_POS_LIMIT_FACTOR,
        kp=(robot.KP,) * n,
        kd=(robot.KD,) * n,
        effort_limit=(robot.EFFORT_LIMIT,) * n,
        velocity_limit=(robot.VELOCITY_LIMIT,) * n,
        armature=robot.ARMATURE,
        sdk_motor_index=tuple(robot.sdk_motor_index(j) for j in joints),
        action_scale=0.25,  # [4] a1/rough_env_cfg.py: actions.joint_pos.scale = 0.25
        # Default bounds: the seed's PPO-percentile bounds; pretrain presets choose others by name.
        action_bounds=ppo_percentile_bounds(),
        obs_terms=obs_terms,
        sim_dt=0.005,  # [1] velocity_env_cfg.py __post_init__
        decimation=4,  # [1] -> 50 Hz policy
        episode_length_s=20.0,  # [1]
        init_base_height=robot.INIT_BASE_HEIGHT,
        commands=CommandRanges(),  # [6]
        rewards={  # [7] final A1 flat weights; zero-weight terms are skipped as in Isaac Lab
            "track_lin_vel_xy_exp": 1.5,
            "track_ang_vel_z_exp": 0.75,
            "lin_vel_z_l2": -2.0,
            "ang_vel_xy_l2": -0.05,
            "dof_torques_l2": -2.0e-4,
            "dof_acc_l2": -2.5e-7,
            "action_rate_l2": -0.01,
            "feet_air_time": 0.25,
            "flat_orientation_l2": -2.5,
        },
        reward_params={
            "tracking_std": 0.5,  # exp(-err^2 / std^2), std = sqrt(0.25)
            "feet_air_time_threshold": 0.5,  # s
            "feet_air_time_min_command": 0.1,  # m/s, reward only when |cmd_xy| > this
            "contact_force_threshold": 1.0,  # N, contact sensor threshold for air/contact time
        },
        terminations=Terminations(),  # [8]
        randomization=DomainRandomization(),  # [9] 3.0 events
        sources={
            "task": ISAACLAB3_TASK_ID,
            "joint_names": "Isaac Lab PhysX order (A1_TASK_CONTRACT.md section 3)",
            "joint_pos_limits": "a1.urdf from pybullet_data (Isaac Lab reads its USD)",
            "armature": "MuJoCo Menagerie a1.xml (Isaac Lab reads its USD)",
            "action_bounds": "Raffin Part II PPO 2.5/97.5 percentiles",
        },
    )


def isaaclab2_flat() -> TaskContract:
    """Isaac Lab 2.x ``Isaac-Velocity-Flat-Unitree-A1-v0``: same task, the easier 2.x randomization."""
    base = isaaclab3_flat()
    return base.replace(
        name="a1_flat_isaaclab2",
        randomization=DomainRandomization(
            base_mass_mode="add_uniform",
            base_mass_range=(-1.0, 3.0),  # kg added to the trunk
            base_com_range=((0.0, 0.0), (0.0, 0.0), (0.0, 0.0)),
            reset_base_velocity=(0.0, 0.0),
            reset_joint_pos_scale=(1.0, 1.0),
            push_interval_s=None,
        ),
        sources={**base.sources, "task": ISAACLAB2_TASK_ID},
    )


def no_base_lin_vel() -> TaskContract:
    """Isaac Lab 3.0 flat without ``base_lin_vel`` (a real A1 cannot measure it directly)."""
    return isaaclab3_flat().without_obs_terms("base_lin_vel", name="a1_flat_isaaclab3_no_lin_vel")


def isaaclab3_flat_symmetric_bounds() -> TaskContract:
    """Isaac Lab 3.0 flat with its SB3 wrapper's default [-1, 1] action bounds."""
    return isaaclab3_flat().replace(name="a1_flat_isaaclab3_unit_bounds", action_bounds=isaaclab3_bounds())


VARIANTS: dict[str, Callable[[], TaskContract]] = {
    "isaaclab3": isaaclab3_flat,
    "isaaclab2": isaaclab2_flat,
    "no_base_lin_vel": no_base_lin_vel,
    "isaaclab3_unit_bounds": isaaclab3_flat_symmetric_bounds,
}
DEFAULT_VARIANT = "isaaclab3"


def get_contract(variant: str = DEFAULT_VARIANT) -> TaskContract:
    """The named contract variant (see :data:`VARIANTS`)."""
    try:
        return VARIANTS[variant]()
    except KeyError:
        raise ContractError(f"unknown contract variant {variant!r}; known: {', '.join(VARIANTS)}") from None
