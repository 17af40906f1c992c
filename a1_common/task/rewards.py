"""Reward terms of the A1 flat velocity task (Isaac Lab's definitions), batched in numpy.

Each term is an (N,) array of the unweighted value; the step reward is
``sum(weight * term) * policy_dt`` over the contract's non-zero weights, as Isaac Lab's reward manager.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


class FootContactTracker:
    """Air/contact timers per foot, updated every physics step like Isaac Lab's contact sensor."""

    def __init__(self, num_envs: int, num_feet: int, physics_dt: float, force_threshold: float) -> None:
        self.dt = physics_dt
        self.threshold = force_threshold
        self.air_time = np.zeros((num_envs, num_feet))
        self.contact_time = np.zeros((num_envs, num_feet))
        self.last_air_time = np.zeros((num_envs, num_feet))

    def update(self, foot_force: np.ndarray) -> None:
        """``foot_force``: (N, substeps, feet) normal forces, one row per physics step, oldest first."""
        for k in range(foot_force.shape[1]):
            in_contact = foot_force[:, k] > self.threshold
            first_contact = (self.air_time > 0.0) & in_contact
            self.last_air_time = np.where(first_contact, self.air_time + self.dt, self.last_air_time)
            self.air_time = np.where(in_contact, 0.0, self.air_time + self.dt)
            self.contact_time = np.where(in_contact, self.contact_time + self.dt, 0.0)

    def first_contact(self, policy_dt: float) -> np.ndarray:
        """Feet that touched down within the last policy step."""
        return (self.contact_time > 0.0) & (self.contact_time < policy_dt + 1e-8)

    def reset(self, env_ids: np.ndarray) -> None:
        for arr in (self.air_time, self.contact_time, self.last_air_time):
            arr[env_ids] = 0.0


@dataclass
class RewardInputs:
    """What the reward terms read at the end of a policy step; arrays are (N, ...)."""

    lin_vel_b: np.ndarray
    ang_vel_b: np.ndarray
    projected_gravity: np.ndarray
    command: np.ndarray
    joint_acc: np.ndarray
    torques: np.ndarray
    action_raw: np.ndarray
    prev_action_raw: np.ndarray
    feet_first_contact: np.ndarray
    feet_last_air_time: np.ndarray


def reward_terms(x: RewardInputs, params: Mapping[str, float], weights: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Unweighted values of the terms that have a non-zero weight."""
    std2 = params["tracking_std"] ** 2
    terms: dict[str, Callable[[], np.ndarray]] = {
        "track_lin_vel_xy_exp": lambda: np.exp(-np.sum((x.command[:, :2] - x.lin_vel_b[:, :2]) ** 2, axis=1) / std2),
        "track_ang_vel_z_exp": lambda: np.exp(-((x.command[:, 2] - x.ang_vel_b[:, 2]) ** 2) / std2),
        "lin_vel_z_l2": lambda: x.lin_vel_b[:, 2] ** 2,
        "ang_vel_xy_l2": lambda: np.sum(x.ang_vel_b[:, :2] ** 2, axis=1),
        "dof_torques_l2": lambda: np.sum(x.torques**2, axis=1),
        "dof_acc_l2": lambda: np.sum(x.joint_acc**2, axis=1),
        "action_rate_l2": lambda: np.sum((x.action_raw - x.prev_action_raw) ** 2, axis=1),
        "feet_air_time": lambda: (
            np.sum((x.feet_last_air_time - params["feet_air_time_threshold"]) * x.feet_first_contact, axis=1)
            * (np.linalg.norm(x.command[:, :2], axis=1) > params["feet_air_time_min_command"])
        ),
        "flat_orientation_l2": lambda: np.sum(x.projected_gravity[:, :2] ** 2, axis=1),
    }
    unknown = [name for name, w in weights.items() if w != 0.0 and name not in terms]
    if unknown:
        raise ValueError(f"contract names reward terms the simulator does not implement: {unknown}")
    return {name: terms[name]() for name, w in weights.items() if w != 0.0}


def state_reward_terms(
    state: Mapping[str, np.ndarray],
    command: np.ndarray,
    *,
    joint_acc: np.ndarray,
    torques: np.ndarray,
    action_raw: np.ndarray,
    prev_action_raw: np.ndarray,
    feet: FootContactTracker,
    policy_dt: float,
    params: Mapping[str, float],
    weights: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """:func:`reward_terms` of a body state (``a1_common.task.observations.body_state``) and the step's extras."""
    inputs = RewardInputs(
        lin_vel_b=state["lin_vel_b"],
        ang_vel_b=state["ang_vel_b"],
        projected_gravity=state["projected_gravity"],
        command=command,
        joint_acc=joint_acc,
        torques=torques,
        action_raw=action_raw,
        prev_action_raw=prev_action_raw,
        feet_first_contact=feet.first_contact(policy_dt),
        feet_last_air_time=feet.last_air_time,
    )
    return reward_terms(inputs, params, weights)


def weighted_sum(terms: Mapping[str, np.ndarray], weights: Mapping[str, float], policy_dt: float) -> np.ndarray:
    """Isaac Lab's step reward: sum(weight * term) * dt."""
    total = sum(weights[name] * value for name, value in terms.items())
    return np.asarray(total) * policy_dt
