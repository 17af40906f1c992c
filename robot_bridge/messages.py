"""Filling the robot's state messages: one definition of their fields, frames and units for every node that
publishes them (the emulator and the A1 driver must be indistinguishable to the policy node and the estimator)."""

from __future__ import annotations

from collections.abc import Sequence

from builtin_interfaces.msg import Time
from sensor_msgs.msg import Imu, JointState


def fill_imu(msg: Imu, stamp: Time, quat_wxyz: Sequence[float], gyro: Sequence[float], acc: Sequence[float]) -> Imu:
    """Orientation (trunk in the world), angular velocity (rad/s) and specific force (m/s^2), both trunk frame."""
    msg.header.stamp = stamp
    o = msg.orientation
    o.w, o.x, o.y, o.z = (float(v) for v in quat_wxyz)
    w = msg.angular_velocity
    w.x, w.y, w.z = (float(v) for v in gyro)
    a = msg.linear_acceleration
    a.x, a.y, a.z = (float(v) for v in acc)
    return msg


def fill_joints(msg: JointState, stamp: Time, position, velocity, effort) -> JointState:
    """Position (rad), velocity (rad/s), effort (N m) in the order of ``msg.name`` (the contract's)."""
    msg.header.stamp = stamp
    msg.position, msg.velocity, msg.effort = position.tolist(), velocity.tolist(), effort.tolist()
    return msg
