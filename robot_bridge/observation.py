"""The contract's observation from robot measurements, with joints matched by name.

No ROS here: the policy node hands over the contents of its messages, this module turns them into the
quantities the simulator computes and then runs the simulator's own :class:`ObservationBuilder` on them
(value -> clip -> scale per the contract's terms; never noise), so robot and simulator share one
implementation of the term pipeline and the contract's scales.

Measurement -> term (frames and units as ``a1_common.task.observations.body_state``):

============================  =========================================================================
``joint_pos`` / ``joint_vel``  ``sensor_msgs/JointState`` position / velocity, matched to the contract's
                               ``joint_names`` by name (the message's order is never trusted); rad, rad/s
``projected_gravity``          from the IMU orientation (trunk frame in the world, ROS order x, y, z, w):
                               the unit gravity direction in the trunk frame, (0, 0, -1) upright
``base_ang_vel``               IMU angular velocity in the trunk frame, rad/s
``base_lin_vel``               ``nav_msgs/Odometry`` twist linear, in the child (trunk) frame: the trunk
                               COM velocity, m/s (only for contracts that observe it)
``velocity_commands``          ``geometry_msgs/Twist`` linear.x, linear.y, angular.z
``actions``                    the policy's previous raw action (bounds units), zero after a (re)start
============================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from a1_common.task.observations import ObservationBuilder
from a1_contract import TaskContract


class MissingJointsError(ValueError):
    """A JointState lacks some of the contract's joints (or their positions/velocities)."""


class JointMap:
    """Maps the joint names of incoming messages to the contract's order (cached per name list)."""

    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = tuple(joint_names)
        self._cached_names: tuple[str, ...] | None = None
        self._cached_index: np.ndarray | None = None

    def indices(self, names: Sequence[str]) -> np.ndarray:
        """For each contract joint, its index in ``names``; :class:`MissingJointsError` names the missing ones."""
        names = tuple(names)
        if names != self._cached_names:
            position = {name: i for i, name in enumerate(names)}
            missing = [j for j in self.joint_names if j not in position]
            if missing:
                raise MissingJointsError(
                    f"JointState lacks contract joints {missing} (it has {list(names)}); joints are matched by name"
                )
            self._cached_index = np.array([position[j] for j in self.joint_names], dtype=np.intp)
            self._cached_names = names
        return self._cached_index

    def reorder(self, names: Sequence[str], values: Sequence[float], what: str) -> np.ndarray:
        """``values`` (one per entry of ``names``) in contract joint order, float64."""
        index = self.indices(names)
        if len(values) != len(names):
            raise MissingJointsError(
                f"JointState has {len(names)} names but {len(values)} {what} entries; the contract needs {what}"
            )
        return np.asarray(values, dtype=np.float64)[index]


def projected_gravity_from_xyzw(quat_xyzw: Sequence[float]) -> np.ndarray:
    """Gravity direction in the body frame from a ROS (x, y, z, w) orientation (normalized first).

    :func:`a1_common.task.batch_math.projected_gravity` on one quaternion, in scalar arithmetic (a control tick
    calls it; the batched version costs several times more for one row). The tests hold the two equal.
    """
    x, y, z, w = (float(v) for v in quat_xyzw)
    norm = (w * w + x * x + y * y + z * z) ** 0.5
    if not norm > 0:
        return np.full(3, np.nan)
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return -np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])


class ObservationAssembler:
    """``build(...)`` -> the contract's ``(obs_dim,)`` float32 observation, as the simulator builds it."""

    def __init__(self, contract: TaskContract) -> None:
        self.contract = contract
        self.joints = JointMap(contract.joint_names)
        self.term_names = tuple(t.name for t in contract.obs_terms)
        self._builder = ObservationBuilder(contract)

    @property
    def needs_base_lin_vel(self) -> bool:
        """Whether the contract observes the body velocity (an estimator or ground truth must publish it)."""
        return "base_lin_vel" in self.term_names

    def build(
        self,
        *,
        joint_pos: np.ndarray,
        joint_vel: np.ndarray,
        projected_gravity: np.ndarray,
        base_ang_vel: Sequence[float],
        command: Sequence[float],
        last_action: np.ndarray,
        base_lin_vel: Sequence[float] | None = None,
    ) -> np.ndarray:
        """One observation; joint arrays are in contract order (:meth:`JointMap.reorder`)."""
        if base_lin_vel is None:
            if self.needs_base_lin_vel:
                raise ValueError("the contract observes base_lin_vel but no body velocity was given")
            base_lin_vel = (0.0, 0.0, 0.0)  # not an observed term: never reaches the policy
        state = {
            "lin_vel_b": np.asarray(base_lin_vel, dtype=np.float64).reshape(1, 3),
            "ang_vel_b": np.asarray(base_ang_vel, dtype=np.float64).reshape(1, 3),
            "projected_gravity": np.asarray(projected_gravity, dtype=np.float64).reshape(1, 3),
            "joint_pos": np.asarray(joint_pos, dtype=np.float64).reshape(1, -1),
            "joint_vel": np.asarray(joint_vel, dtype=np.float64).reshape(1, -1),
        }
        command = np.asarray(command, dtype=np.float64).reshape(1, 3)
        action = np.asarray(last_action, dtype=np.float64).reshape(1, -1)
        return self._builder(state, command, action, rng=None)[0]
