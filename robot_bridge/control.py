"""One control tick, without ROS: the latest measurements -> safety -> policy -> joint targets.

The policy node feeds :class:`PolicyLoop` from its subscriptions (``on_*``, each replaces one sample, so a
tick on another thread sees either the old or the new sample, never half of one) and calls :meth:`tick`
from its control timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from a1_contract import ContractError, TaskContract
from deploy.runner import ContractMismatchError, PolicyRunner
from robot_bridge.observation import ObservationAssembler, projected_gravity_from_xyzw
from robot_bridge.safety import SafetyController, SafetyDecision, SafetyStatus, StateSample


def load_policy(path: str | Path, expected: TaskContract, *, policy_bounds: bool = True) -> PolicyRunner:
    """Load an exported policy and refuse one whose contract differs from ``expected``.

    The action bounds are the policy's own choice (they map its normalized actions to raw units inside the
    ONNX graph; the robot only sees raw actions), so with ``policy_bounds`` they are taken from the policy
    and every other field must match. :class:`ContractMismatchError` names the differing fields.
    """
    runner = PolicyRunner(path)
    required = expected.replace(action_bounds=runner.contract.action_bounds) if policy_bounds else expected
    try:
        required.require_same(runner.contract, what=f"policy file {path}")
    except ContractError as exc:
        raise ContractMismatchError(str(exc)) from exc
    return runner


@dataclass(frozen=True)
class _Sample:
    stamp: float
    values: tuple[np.ndarray, ...]


class PolicyLoop:
    """Holds the newest sample of each input; ``tick(now)`` returns the safety layer's decision.

    Times (``stamp``, ``now``) are seconds on one monotonic clock. The ``actions`` observation term is the
    policy's previous raw output, reset to zero whenever the policy is not running (as at an episode reset).
    """

    def __init__(
        self,
        runner: PolicyRunner,
        safety: SafetyController,
        initial_command: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> None:
        self.runner = runner
        self.contract = runner.contract
        self.safety = safety
        self.assembler = ObservationAssembler(self.contract)
        self.command = np.asarray(initial_command, dtype=np.float64).reshape(3)
        self.last_action = np.zeros(self.contract.num_joints)
        self._joints: _Sample | None = None
        self._imu: _Sample | None = None
        self._body_velocity: _Sample | None = None
        self.joints_stamp = float("nan")
        """Arrival time of the joint sample the last tick used (latency measurements)."""
        self.joints_arrival = float("-inf")
        """Arrival time of the newest joint sample."""

    # ---- inputs -------------------------------------------------------------------------------
    def on_joints(
        self,
        stamp: float,
        names: Sequence[str],
        position: Sequence[float],
        velocity: Sequence[float],
        effort: Sequence[float] | None = None,
    ) -> None:
        """A JointState's contents (``effort`` is not observed by the policy; a loop that scores torques reads it);
        raises :class:`~robot_bridge.observation.MissingJointsError`."""
        joints = self.assembler.joints
        self._joints = _Sample(stamp, (joints.reorder(names, position, "position"),
                                       joints.reorder(names, velocity, "velocity")))  # fmt: skip
        self.joints_arrival = stamp

    def on_imu(self, stamp: float, orientation_xyzw: Sequence[float], angular_velocity: Sequence[float]) -> None:
        gravity = projected_gravity_from_xyzw(orientation_xyzw)
        self._imu = _Sample(stamp, (gravity, np.asarray(angular_velocity, dtype=np.float64)))

    def on_body_velocity(self, stamp: float, linear_velocity: Sequence[float]) -> None:
        """Body-frame trunk velocity (m/s), from an estimator or the emulator's ground truth."""
        self._body_velocity = _Sample(stamp, (np.asarray(linear_velocity, dtype=np.float64),))

    def on_command(self, vx: float, vy: float, yaw_rate: float) -> None:
        self.command = np.array([vx, vy, yaw_rate], dtype=np.float64)

    # ---- the tick -----------------------------------------------------------------------------
    def state(self) -> StateSample | None:
        """The newest measurements as one sample stamped with the oldest input's arrival; ``None``: one is missing."""
        joints, imu, body = self._joints, self._imu, self._body_velocity
        needs_body = self.assembler.needs_base_lin_vel
        if joints is None or imu is None or (needs_body and body is None):
            return None
        extras = {"joint_vel": joints.values[1], "base_ang_vel": imu.values[1], "velocity_command": self.command}
        stamp = min(joints.stamp, imu.stamp)
        if needs_body:
            extras["base_lin_vel"] = body.values[0]
            stamp = min(stamp, body.stamp)
        self.joints_stamp = joints.stamp
        return StateSample(stamp, joints.values[0], imu.values[0], extras)

    def tick(self, now: float) -> SafetyDecision:
        """One control period: the newest state through the safety layer, which calls the policy when it may."""
        state = self.state()
        self._before_step(state)
        decision = self.safety.step(now, state, lambda: self._policy_targets(state))
        self._after_step(state, decision)
        if decision.status is not SafetyStatus.RUNNING:
            self.last_action[:] = 0.0
        return decision

    def _before_step(self, state: StateSample | None) -> None:
        """Called by :meth:`tick` before the safety layer steps (a subclass may swap its policy here)."""

    def _after_step(self, state: StateSample | None, decision: SafetyDecision) -> None:
        """Called by :meth:`tick` with the safety layer's decision, before ``last_action`` is zeroed when the policy
        is not running (a subclass may record what the policy's last action led to here)."""

    def observation(self, state: StateSample, command: np.ndarray | None = None) -> np.ndarray:
        """The policy's observation of ``state`` (``command``: the sample's own unless given), with the last action."""
        extras = state.extras
        return self.assembler.build(
            joint_pos=state.joint_pos,
            joint_vel=extras["joint_vel"],
            projected_gravity=state.projected_gravity,
            base_ang_vel=extras["base_ang_vel"],
            command=extras["velocity_command"] if command is None else command,
            last_action=self.last_action,
            base_lin_vel=extras.get("base_lin_vel"),
        )

    def _policy_targets(self, state: StateSample) -> np.ndarray:
        obs = self.observation(state)
        raw = self.runner.act(obs)
        self.last_action = raw.astype(np.float64)
        return self.contract.raw_joint_targets(self.last_action)
