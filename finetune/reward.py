"""The task reward computed on the robot from what it measures (numpy only; the actor's side of fine-tuning).

The terms and weights are the contract's, evaluated by the simulator's own :func:`a1_common.task.rewards.reward_terms`
(one robot = a batch of one), so a real transition is scored exactly as a simulated one would be, up to the
measurements:

=========================  =============================================================================
term                       measured from
=========================  =============================================================================
track_lin_vel_xy_exp       body velocity (``odom``: the estimator on a robot, ground truth in the emulator)
track_ang_vel_z_exp        IMU gyroscope
lin_vel_z_l2               body velocity (the estimator's z: the noisiest term)
ang_vel_xy_l2              IMU gyroscope
dof_torques_l2             joint effort (the A1's ``tauEst``)
dof_acc_l2                 difference of consecutive joint velocities (the simulator: of physics steps)
action_rate_l2             the actions themselves
feet_air_time              foot contact forces (``foot_contacts``), air/contact timers per sample
flat_orientation_l2        IMU orientation (projected gravity)
=========================  =============================================================================

A term whose input never arrives (no ``foot_contacts`` topic, no effort, no body velocity) is left out of the
reward and listed in :attr:`RobotReward.unmeasured`; the contract's weight of every other term is unchanged.
"""

from __future__ import annotations

import numpy as np

from a1_common.task.rewards import FootContactTracker, RewardInputs, reward_terms
from a1_contract import TaskContract

NEEDS = {
    "track_lin_vel_xy_exp": "body_velocity",
    "lin_vel_z_l2": "body_velocity",
    "dof_torques_l2": "effort",
    "feet_air_time": "feet",
}
"""Reward term -> the measurement it needs beyond joints and IMU."""


class RobotReward:
    """Feed measurements as they arrive (``on_*``); :meth:`step` scores one control period."""

    def __init__(self, contract: TaskContract) -> None:
        self.contract = contract
        self.weights = {name: w for name, w in contract.rewards.items() if w != 0.0}
        self.feet = FootContactTracker(1, 4, contract.sim_dt, contract.reward_params["contact_force_threshold"])
        self._have: set[str] = set()
        self._dq_prev: tuple[float, np.ndarray] | None = None
        self._feet_stamp: float | None = None
        self.joint_acc = np.zeros(contract.num_joints)
        self.torques = np.zeros(contract.num_joints)
        self.body_velocity = np.zeros(3)

    def on_joints(self, stamp: float, joint_vel: np.ndarray, effort: np.ndarray | None) -> None:
        if self._dq_prev is not None and stamp > self._dq_prev[0]:
            self.joint_acc = (joint_vel - self._dq_prev[1]) / (stamp - self._dq_prev[0])
        self._dq_prev = (stamp, np.array(joint_vel, dtype=np.float64))
        if effort is not None and len(effort) == self.contract.num_joints:
            self.torques = np.asarray(effort, dtype=np.float64)
            self._have.add("effort")

    def on_feet(self, stamp: float, forces: np.ndarray) -> None:
        """Normal force (N) at FL, FR, RL, RR; the air/contact timers advance by the time since the last sample."""
        if self._feet_stamp is not None and stamp > self._feet_stamp:
            self.feet.dt = min(stamp - self._feet_stamp, 0.05)
            self.feet.update(np.asarray(forces, dtype=np.float64).reshape(1, 1, 4))
        self._feet_stamp = stamp
        self._have.add("feet")

    def on_body_velocity(self, velocity: np.ndarray) -> None:
        self.body_velocity = np.asarray(velocity, dtype=np.float64)
        self._have.add("body_velocity")

    @property
    def unmeasured(self) -> list[str]:
        """Terms left out because their measurement has not arrived."""
        return [name for name in self.weights if NEEDS.get(name, "") and NEEDS[name] not in self._have]

    def step(
        self,
        *,
        ang_vel_b: np.ndarray,
        projected_gravity: np.ndarray,
        command: np.ndarray,
        action_raw: np.ndarray,
        prev_action_raw: np.ndarray,
    ) -> tuple[float, dict[str, float]]:
        """(step reward, unweighted terms) for the control period that just ended."""
        one = lambda a: np.asarray(a, dtype=np.float64)[None]
        inputs = RewardInputs(
            lin_vel_b=one(self.body_velocity),
            ang_vel_b=one(ang_vel_b),
            projected_gravity=one(projected_gravity),
            command=one(command),
            joint_acc=one(self.joint_acc),
            torques=one(self.torques),
            action_raw=one(action_raw),
            prev_action_raw=one(prev_action_raw),
            feet_first_contact=self.feet.first_contact(self.contract.policy_dt),
            feet_last_air_time=self.feet.last_air_time,
        )
        skip = set(self.unmeasured)
        weights = {k: w for k, w in self.weights.items() if k not in skip}
        terms = {k: float(v[0]) for k, v in reward_terms(inputs, self.contract.reward_params, weights).items()}
        reward = sum(weights[k] * v for k, v in terms.items()) * self.contract.policy_dt
        return float(reward), terms
