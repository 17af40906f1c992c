"""Contract joint order <-> the A1's SDK motor slots: servo, damping and brake commands, joint state, IMU, feet.

The policy side works in the task contract's joint and foot order (``a1_contract``); the wire works in SDK motor
indices (FR_0 = 0 ... RL_2 = 11) and ``footForce`` leg slots (FR, FL, RR, RL). Message types are in
:mod:`robot_bridge.unitree_protocol`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_bridge.unitree_protocol import (
    FOOT_LEGS,
    MODE_SERVO,
    NUM_LEG_MOTORS,
    POS_STOP_F,
    LowCmd,
    LowState,
)


# ---- joint mapping (contract order <-> SDK motor index) ----------------------------------------------------
def _motor_index(contract: Any | None) -> np.ndarray:
    if contract is None:
        from a1_contract import get_contract

        contract = get_contract()
    idx = np.asarray(contract.sdk_motor_index, dtype=np.intp)
    if sorted(idx.tolist()) != list(range(NUM_LEG_MOTORS)):
        raise ValueError(f"sdk_motor_index must be a permutation of 0..11, got {idx.tolist()}")
    return idx


def _per_joint(x: Any, what: str, n: int = NUM_LEG_MOTORS) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: non-finite value in {arr.tolist()}")
    return arr


def targets_to_motor_cmd(
    q_targets: Any,
    kp: Any,
    kd: Any,
    dq_targets: Any = 0.0,
    tau_ff: Any = 0.0,
    contract: Any | None = None,
) -> LowCmd:
    """Joint position targets (contract order, rad) + gains -> a servo ``LowCmd`` in SDK motor order.

    ``kp``, ``kd``, ``dq_targets`` and ``tau_ff`` are scalars or per-joint arrays in contract order. Motors
    0..11 get mode 0x0A (servo); motors 12..19 stay zero with mode 0x00. Non-finite inputs raise ValueError
    (nothing non-finite ever reaches the wire).
    """
    idx = _motor_index(contract)
    n = len(idx)
    cmd = LowCmd()
    cmd.mode[idx] = MODE_SERVO
    cmd.q[idx] = _per_joint(q_targets, "q_targets", n)
    cmd.dq[idx] = _per_joint(dq_targets, "dq_targets", n)
    cmd.tau[idx] = _per_joint(tau_ff, "tau_ff", n)
    kp_arr, kd_arr = _per_joint(kp, "kp", n), _per_joint(kd, "kd", n)
    if np.any(kp_arr < 0) or np.any(kd_arr < 0):
        raise ValueError("kp and kd must be >= 0")
    cmd.kp[idx] = kp_arr
    cmd.kd[idx] = kd_arr
    return cmd


def damping_cmd(kd: Any, contract: Any | None = None) -> LowCmd:
    """Damping: every leg motor in servo mode (0x0A) with Kp = 0, dq = 0, tau = 0 and Kd > 0.

    The motor then applies only ``-Kd * dq``: the legs fold slowly under gravity instead of being driven.
    ``q`` is set to the SDK's ``PosStopF`` (the SDK's way of switching the position term off; Kp = 0 does it
    already). We use this rather than mode 0x00 because its strength is ours to choose; the firmware's 0x00
    "damping/brake" behaviour is not published (see :func:`brake_cmd`).
    """
    idx = _motor_index(contract)
    kd_arr = _per_joint(kd, "kd", len(idx))
    if np.any(kd_arr <= 0):
        raise ValueError(f"damping needs kd > 0, got {kd_arr.tolist()}")
    cmd = LowCmd()
    cmd.mode[idx] = MODE_SERVO
    cmd.q[idx] = POS_STOP_F
    cmd.kd[idx] = kd_arr
    return cmd


def brake_cmd() -> LowCmd:
    """Every motor in mode 0x00 (the SDK bridges' "brake"/damping mode) with all targets and gains zero."""
    return LowCmd()


def motor_state_to_contract(state: LowState, contract: Any | None = None) -> tuple[np.ndarray, ...]:
    """Joint ``(q, dq, tau_est)`` in contract order (float64) from a ``LowState``."""
    idx = _motor_index(contract)
    return (
        state.q[idx].astype(np.float64),
        state.dq[idx].astype(np.float64),
        state.tau_est[idx].astype(np.float64),
    )


def contract_to_motor_state(state: LowState, q: Any, dq: Any, tau: Any = 0.0, contract: Any | None = None) -> LowState:
    """Write joint ``q, dq, tau`` (contract order) into ``state``'s motor slots (emulator side); returns it."""
    idx = _motor_index(contract)
    n = len(idx)
    state.q[idx] = _per_joint(q, "q", n)
    state.dq[idx] = _per_joint(dq, "dq", n)
    state.tau_est[idx] = _per_joint(tau, "tau", n)
    state.q_raw[idx] = state.q[idx]
    state.dq_raw[idx] = state.dq[idx]
    state.mode[idx] = MODE_SERVO
    return state


def imu_from_state(state: LowState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(quaternion (w, x, y, z), gyroscope rad/s, accelerometer m/s^2)`` as float64, as the robot reports them."""
    return (
        state.quaternion.astype(np.float64),
        state.gyroscope.astype(np.float64),
        state.accelerometer.astype(np.float64),
    )


def foot_forces(state: LowState) -> dict[str, float]:
    """Raw foot force readings keyed by leg name (FR, FL, RR, RL); units are the sensor's, not newtons."""
    return {leg: float(state.foot_force[i]) for i, leg in enumerate(FOOT_LEGS)}


def is_finite_cmd(cmd: LowCmd) -> bool:
    """True when every float field of ``cmd`` is finite (a last check before sending)."""
    return all(bool(np.isfinite(arr).all()) for arr in (cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd))


# ---- foot forces (contract foot order <-> footForce slots) -------------------------------------------------
FOOT_FORCE_NEWTONS_PER_UNIT = 1.0
"""Newtons per raw ``footForce`` count. NOT VERIFIED: Unitree publishes no unit (A1_HARDWARE.md section 3 gives
only contact thresholds in raw counts: 20 walk_in_the_park, 40 legged_control). Calibrate on the robot (stand
still, sum of the four readings * scale = m g) and set the driver's ``foot_force_scale``."""


def foot_slots(foot_names: Any) -> np.ndarray:
    """``footForce`` index of each foot in ``foot_names`` (e.g. ``robot.FOOT_NAMES``: "FL_foot" -> FL -> 1)."""
    try:
        return np.array([FOOT_LEGS.index(str(name).split("_")[0]) for name in foot_names], dtype=np.intp)
    except ValueError as exc:
        raise ValueError(f"foot names must start with one of {FOOT_LEGS}, got {list(foot_names)}") from exc


def foot_forces_newtons(state: LowState, foot_names: Any, scale: float = FOOT_FORCE_NEWTONS_PER_UNIT) -> np.ndarray:
    """Foot forces (N) in ``foot_names`` order from the raw ``footForce`` readings."""
    return state.foot_force[foot_slots(foot_names)].astype(np.float64) * scale


def set_foot_forces(
    state: LowState, forces_n: Any, foot_names: Any, scale: float = FOOT_FORCE_NEWTONS_PER_UNIT
) -> LowState:
    """Write foot forces (N, ``foot_names`` order) as raw int16 counts (emulator side); returns ``state``."""
    if scale <= 0:
        raise ValueError(f"foot force scale must be > 0, got {scale}")
    raw = np.clip(np.round(_per_joint(forces_n, "foot forces", len(foot_names)) / scale), -32768, 32767)
    state.foot_force[foot_slots(foot_names)] = raw.astype(np.int16)
    return state
