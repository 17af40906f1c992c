"""Body-frame state and the policy observation, batched in numpy; shared by every MuJoCo A1 env."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from a1_common.task import batch_math
from a1_contract import TaskContract

if TYPE_CHECKING:  # the robot-side observation builder uses this module without MuJoCo
    from a1_common.sim.a1_model import A1ModelInfo


def body_state(qpos: np.ndarray, qvel: np.ndarray, trunk_com: np.ndarray, info: A1ModelInfo) -> dict[str, np.ndarray]:
    """Body-frame quantities of (N, nq) positions and (N, nv) velocities; ``trunk_com`` is (N, 3).

    Isaac Lab's ``root_lin_vel_b`` is the trunk COM velocity in the trunk frame; MuJoCo's free joint
    gives the trunk origin's world velocity, so ``w x r_com`` is added in the body frame.
    """
    quat = qpos[:, 3:7].copy()
    ang_vel_b = qvel[:, 3:6].copy()
    return {
        "quat": quat,
        "lin_vel_b": batch_math.quat_rotate_inverse(quat, qvel[:, 0:3]) + batch_math.cross(ang_vel_b, trunk_com),
        "ang_vel_b": ang_vel_b,
        "projected_gravity": batch_math.projected_gravity(quat),
        "joint_pos": qpos[:, info.qpos_joints],
        "joint_vel": qvel[:, info.qvel_joints],
    }


class ObservationBuilder:
    """The contract's observation terms in order: value -> additive uniform noise -> clip -> scale."""

    def __init__(self, contract: TaskContract) -> None:
        self.terms = contract.obs_terms
        self.default_joint_pos = np.asarray(contract.default_joint_pos)
        self.noise_scale = np.concatenate([np.full(t.dim, t.noise) for t in self.terms])
        known = {
            "base_lin_vel",
            "base_ang_vel",
            "projected_gravity",
            "velocity_commands",
            "joint_pos",
            "joint_vel",
            "actions",
        }
        unknown = [t.name for t in self.terms if t.name not in known]
        if unknown:
            raise ValueError(f"contract has observation terms the simulator does not implement: {unknown}")

    def __call__(
        self,
        state: dict[str, np.ndarray],
        command: np.ndarray,
        action_raw: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """(N, obs_dim) float32 observation; ``rng`` given means training noise is added."""
        values = {
            "base_lin_vel": state["lin_vel_b"],
            "base_ang_vel": state["ang_vel_b"],
            "projected_gravity": state["projected_gravity"],
            "velocity_commands": command,
            "joint_pos": state["joint_pos"] - self.default_joint_pos,
            "joint_vel": state["joint_vel"],
            "actions": action_raw,
        }
        obs = np.concatenate([values[t.name] for t in self.terms], axis=1)
        if rng is not None:
            obs = obs + rng.uniform(-1.0, 1.0, size=obs.shape) * self.noise_scale
        start = 0
        for term in self.terms:
            block = obs[:, start : start + term.dim]
            if term.clip is not None:
                np.clip(block, *term.clip, out=block)
            if term.scale != 1.0:
                block *= term.scale
            start += term.dim
        return obs.astype(np.float32)
