"""The robot's left-right mirror symmetry, for the contract's joints, observations and actions.

Reflecting the A1 and its world in the sagittal plane (x-z of the base frame) maps a feasible motion to a
feasible motion with the same reward: the left and right legs swap (FL <-> FR, RL <-> RR), hip
abduction angles change sign, thigh and calf angles do not; in the base frame y components of linear
vectors and x, z components of angular ones change sign. The command (vx, vy, wz) becomes (vx, -vy, -wz).
Off-policy learners use it to add mirrored transitions to their batches (``pretrain/mirror.py``), which
teaches a symmetric gait: a policy that turns left as well as right and walks straight when asked to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from a1_contract.components import ContractError
from a1_contract.contract import TaskContract

_SWAP = {"FL": "FR", "FR": "FL", "RL": "RR", "RR": "RL"}
_SIGN_BY_JOINT_TYPE = {"hip": -1.0, "thigh": 1.0, "calf": 1.0}
# Per-component sign of the 3-vector observation terms under the mirror.
_VECTOR_SIGNS = {
    "base_lin_vel": (1.0, -1.0, 1.0),
    "base_ang_vel": (-1.0, 1.0, -1.0),
    "projected_gravity": (1.0, -1.0, 1.0),
    "velocity_commands": (1.0, -1.0, -1.0),
}
# Joint-space observation terms (relative position, velocity, last raw action): joint permutation and signs.
_JOINT_TERMS = ("joint_pos", "joint_vel", "actions")


@dataclass(frozen=True)
class Mirror:
    """Index permutations and signs: ``mirrored[..., i] = sign[i] * x[..., perm[i]]``."""

    joint_perm: np.ndarray
    joint_sign: np.ndarray
    obs_perm: np.ndarray
    obs_sign: np.ndarray

    def joints(self, x: np.ndarray) -> np.ndarray:
        """Mirror joint-space values (angles relative to a mirror-symmetric pose, velocities, raw actions)."""
        mirrored: np.ndarray = x[..., self.joint_perm] * self.joint_sign
        return mirrored

    def obs(self, obs: np.ndarray) -> np.ndarray:
        """Mirror raw (unnormalized) observations laid out as the contract's ``obs_terms``."""
        mirrored: np.ndarray = obs[..., self.obs_perm] * self.obs_sign
        return mirrored


def joint_mirror(joint_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(permutation, signs) of the joints: ``FL_hip_joint`` <-> ``FR_hip_joint`` with sign -1, and so on."""
    index = {name: i for i, name in enumerate(joint_names)}
    perm, sign = [], []
    for name in joint_names:
        leg, kind = name.split("_")[:2]
        if leg not in _SWAP or kind not in _SIGN_BY_JOINT_TYPE:
            raise ContractError(f"no mirror for joint {name!r} (expected <FL|FR|RL|RR>_<hip|thigh|calf>_joint)")
        partner = name.replace(leg, _SWAP[leg], 1)
        if partner not in index:
            raise ContractError(f"joint {name!r} has no mirror partner {partner!r}")
        perm.append(index[partner])
        sign.append(_SIGN_BY_JOINT_TYPE[kind])
    return np.asarray(perm), np.asarray(sign)


def mirror_of(contract: TaskContract) -> Mirror:
    """The contract's mirror; refuses a contract whose default pose or observation terms are not symmetric."""
    perm, sign = joint_mirror(contract.joint_names)
    default = np.asarray(contract.default_joint_pos)
    if not np.allclose(default[perm] * sign, default):
        raise ContractError(f"{contract.name}: the default joint pose is not left-right symmetric")
    obs_perm, obs_sign, start = [], [], 0
    for term in contract.obs_terms:
        if term.name in _VECTOR_SIGNS and term.dim == 3:
            obs_perm += [start, start + 1, start + 2]
            obs_sign += list(_VECTOR_SIGNS[term.name])
        elif term.name in _JOINT_TERMS and term.dim == len(perm):
            obs_perm += list(start + perm)
            obs_sign += list(sign)
        else:
            raise ContractError(f"{contract.name}: no mirror for observation term {term.name!r} ({term.dim})")
        start += term.dim
    return Mirror(perm, sign, np.asarray(obs_perm), np.asarray(obs_sign, dtype=np.float64))
