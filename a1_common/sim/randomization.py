"""The contract's domain randomization on the MuJoCo A1, and the actuation latency range.

* Start-up (once per env, at construction): each env gets its own ``MjModel`` with its friction, trunk mass
  (inertia scaled with it) and trunk COM offset drawn from the contract (:func:`startup_models`).
* Reset (every episode): base position, yaw, linear and angular velocity, joint positions (default pose scaled,
  clamped to the soft joint limits) and the time to the first push (:class:`ResetSampler`).
* Latency: ``action_delay_substeps`` as a checked (low, high) range of physics steps (:func:`delay_range`); each
  robot's latency is drawn from it at every reset.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import mujoco
import numpy as np

from a1_common.task import batch_math
from a1_contract import TaskContract


def startup_models(
    model: mujoco.MjModel, contract: TaskContract, trunk_body: int, rng: np.random.Generator, num_envs: int
) -> list[mujoco.MjModel]:
    """One copy of ``model`` per env with the contract's startup randomization (friction, trunk mass and COM)."""
    dr = contract.randomization
    trunk = trunk_body
    base_mass = float(model.body_mass[trunk])
    models = []
    for _ in range(num_envs):
        m = copy.deepcopy(model)
        m.geom_friction[:, 0] = rng.uniform(*dr.static_friction_range)
        if dr.base_mass_mode == "scale_log_uniform":
            lo, hi = np.log(dr.base_mass_range)
            mass = base_mass * float(np.exp(rng.uniform(lo, hi)))
        elif dr.base_mass_mode == "add_uniform":
            mass = base_mass + float(rng.uniform(*dr.base_mass_range))
        else:
            raise ValueError(f"unknown base_mass_mode {dr.base_mass_mode!r}")
        m.body_mass[trunk] = mass
        m.body_inertia[trunk] *= mass / base_mass  # same shape, scaled with the mass
        m.body_ipos[trunk] += [rng.uniform(*r) for r in dr.base_com_range]
        mujoco.mj_setConst(m, mujoco.MjData(m))
        models.append(m)
    return models


def modified_models(models: list[mujoco.MjModel], modify: Callable[[mujoco.MjModel], None]) -> list[mujoco.MjModel]:
    """A modified copy of each distinct model (envs that shared a model share its copy)."""
    copies: dict[int, mujoco.MjModel] = {}
    for m in models:
        if id(m) not in copies:
            new = copy.deepcopy(m)
            modify(new)
            mujoco.mj_setConst(new, mujoco.MjData(new))
            copies[id(m)] = new
    return [copies[id(m)] for m in models]


class ResetSampler:
    """Reset states of the A1: nominal (default pose at rest) or drawn from the contract's reset randomization.

    Args:
        contract: the task contract (default pose, soft joint limits, reset and push ranges).
        default_qpos: (nq,) the model's qpos at the default pose.
        qpos_joints: qpos indices of the contract's joints, in contract order.
        nv: number of generalized velocities.
    """

    def __init__(self, contract: TaskContract, default_qpos: np.ndarray, qpos_joints: np.ndarray, nv: int) -> None:
        self.contract = contract
        self.default_qpos = default_qpos
        self.qpos_joints = qpos_joints
        self.nv = nv
        self._default = np.asarray(contract.default_joint_pos)
        self._soft_limits = contract.soft_joint_pos_limits()

    def nominal(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(qpos (n, nq), qvel (n, nv)): the default pose, at rest."""
        return np.tile(self.default_qpos, (n, 1)), np.zeros((n, self.nv))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """(qpos, qvel, seconds to each robot's first push, or ``inf`` without pushes) for ``n`` robots."""
        c, dr = self.contract, self.contract.randomization
        qpos, qvel = self.nominal(n)
        qpos[:, 0:2] = rng.uniform(*dr.reset_base_pos_xy, size=(n, 2))
        quat = batch_math.yaw_quat(rng.uniform(*dr.reset_base_yaw, size=n))
        qpos[:, 3:7] = quat
        qvel[:, 0:3] = rng.uniform(*dr.reset_base_velocity, size=(n, 3))
        # Isaac Lab samples the angular velocity in the world frame; MuJoCo's free joint wants body frame.
        qvel[:, 3:6] = batch_math.quat_rotate_inverse(quat, rng.uniform(*dr.reset_base_velocity, size=(n, 3)))
        joint_pos = self._default * rng.uniform(*dr.reset_joint_pos_scale, size=(n, c.num_joints))
        qpos[:, self.qpos_joints] = np.clip(joint_pos, self._soft_limits[:, 0], self._soft_limits[:, 1])
        interval = dr.push_interval_s
        push_time: np.ndarray | float = rng.uniform(*interval, size=n) if interval else np.inf
        return qpos, qvel, push_time


def delay_range(value: int | tuple[int, int] | list[int], most: int) -> tuple[int, int]:
    """``action_delay_substeps`` as a checked (low, high) pair of physics steps."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"action_delay_substeps must be an int or a (low, high) pair of ints, got {value!r}")
    low, high = int(pair[0]), int(pair[1])
    if not 0 <= low <= high <= most:
        raise ValueError(f"action_delay_substeps must satisfy 0 <= low <= high <= {most} (two policy steps): {value!r}")
    return low, high
