"""A1 leg forward kinematics and foot Jacobians in the trunk frame, pure numpy.

Each leg is a hip joint about the trunk's x axis, then thigh and calf joints about the hip's y axis; the foot
point is the centre of the foot sphere (the URDF's ``*_toe`` link, MuJoCo's foot site). Lengths and offsets
are ``a1_contract.robot``'s (from the URDF); joint angles come in the contract's joint order, matched by name.
``tests/robot_bridge/test_kinematics.py`` holds positions against MuJoCo and the Jacobians against finite
differences. Used by :mod:`robot_bridge.estimator`::

    kin = LegKinematics(get_contract().joint_names)
    feet = kin.foot_positions(q)             # (4, 3) m, trunk frame, legs FL FR RL RR
    jac = kin.foot_jacobians(q)              # (4, 3, 3): d foot / d (hip, thigh, calf) of each leg
    vel = kin.foot_velocities(q, dq)         # (4, 3) m/s relative to the trunk, in the trunk frame
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from a1_contract import robot

# Sign of each leg's offsets: front legs at +x, left legs at +y [URDF hip joint origins].
_SIDE_X = np.array([1.0 if leg[0] == "F" else -1.0 for leg in robot.LEGS])
_SIDE_Y = np.array([1.0 if leg[1] == "L" else -1.0 for leg in robot.LEGS])


class LegKinematics:
    """Forward kinematics of the four legs (``robot.LEGS`` order) for joint vectors in ``joint_names`` order."""

    def __init__(self, joint_names: Sequence[str]) -> None:
        names = list(joint_names)
        try:
            self.leg_joints = np.array(
                [[names.index(f"{leg}_{part}_joint") for part in robot.PARTS] for leg in robot.LEGS], dtype=np.intp
            )
            """(4, 3) index into the joint vector of each leg's hip, thigh, calf joint."""
        except ValueError as exc:
            raise ValueError(f"joint_names {names} lack an A1 leg joint: {exc}") from None
        self.num_joints = len(names)
        self.hip_offsets = np.stack([_SIDE_X * robot.HIP_OFFSET_X, _SIDE_Y * robot.HIP_OFFSET_Y, np.zeros(4)], axis=1)
        """(4, 3) hip joint positions in the trunk frame (m)."""
        self.thigh_offsets_y = _SIDE_Y * robot.THIGH_OFFSET_Y

    def _leg_angles(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.num_joints,):
            raise ValueError(f"joint vector must have shape ({self.num_joints},), got {q.shape}")
        angles = q[self.leg_joints]
        return angles[:, 0], angles[:, 1], angles[:, 2]

    def foot_positions(self, q: np.ndarray) -> np.ndarray:
        """(4, 3) foot sphere centres in the trunk frame (m)."""
        return self.forward(q)[0]

    def foot_jacobians(self, q: np.ndarray) -> np.ndarray:
        """(4, 3, 3): column k of leg i is d foot_i / d (hip, thigh, calf)_k in the trunk frame (m/rad)."""
        return self.forward(q)[1]

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`foot_positions` and :meth:`foot_jacobians` in one pass.

        In the hip frame (before the hip's rotation about x) the foot is ``u = (-l2 sin t - l3 sin(t + c), y,
        -l2 cos t - l3 cos(t + c))``; the foot is ``hip_offset + Rx(h) u``. Filled column by column: this runs
        at every IMU-rate update, and ``np.stack`` of 4-vectors costs more than the arithmetic.
        """
        hip, thigh, calf = self._leg_angles(q)
        cos_h, sin_h = np.cos(hip), np.sin(hip)
        thigh_x, thigh_z = robot.THIGH_LENGTH * np.sin(thigh), robot.THIGH_LENGTH * np.cos(thigh)
        calf_x, calf_z = robot.CALF_LENGTH * np.sin(thigh + calf), robot.CALF_LENGTH * np.cos(thigh + calf)
        u_x, u_y, u_z = -thigh_x - calf_x, self.thigh_offsets_y, -thigh_z - calf_z
        positions = self.hip_offsets.copy()
        positions[:, 0] += u_x
        positions[:, 1] += cos_h * u_y - sin_h * u_z
        positions[:, 2] += sin_h * u_y + cos_h * u_z
        jac = np.zeros((4, 3, 3))
        jac[:, 1, 0] = -sin_h * u_y - cos_h * u_z  # d/d hip: Rx'(h) u
        jac[:, 2, 0] = cos_h * u_y - sin_h * u_z
        jac[:, 0, 1] = u_z  # d/d thigh: Rx(h) (u_z, 0, -u_x)
        jac[:, 1, 1] = sin_h * u_x
        jac[:, 2, 1] = -cos_h * u_x
        jac[:, 0, 2] = -calf_z  # d/d calf: Rx(h) (-l3 cos(t + c), 0, l3 sin(t + c))
        jac[:, 1, 2] = -sin_h * calf_x
        jac[:, 2, 2] = cos_h * calf_x
        return positions, jac

    def foot_velocities(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """(4, 3) foot velocities relative to the trunk, in the trunk frame (m/s): ``J(q) dq`` per leg."""
        dq = np.asarray(dq, dtype=np.float64)
        if dq.shape != (self.num_joints,):
            raise ValueError(f"joint velocity vector must have shape ({self.num_joints},), got {dq.shape}")
        return np.einsum("lij,lj->li", self.foot_jacobians(q), dq[self.leg_joints])

    def calf_angular_velocities(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """(4, 3) angular velocity of each calf (and foot sphere) relative to the trunk, trunk frame (rad/s)."""
        hip, _, _ = self._leg_angles(q)
        rates = np.asarray(dq, dtype=np.float64)[self.leg_joints]
        pitch_rate = rates[:, 1] + rates[:, 2]  # thigh and calf axes coincide: the hip's rotated y axis
        omega = np.empty((4, 3))
        omega[:, 0], omega[:, 1], omega[:, 2] = rates[:, 0], np.cos(hip) * pitch_rate, np.sin(hip) * pitch_rate
        return omega
