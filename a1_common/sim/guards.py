"""What the batched A1 env refuses or catches: a MuJoCo state layout it cannot index, malformed actions, and
diverged physics.

Actions must be finite, normalized to [-1, 1] (within 1e-6) and shaped (num_envs, num_joints); anything else
raises ``ValueError`` before the simulator steps. A robot whose state is non-finite or whose generalized velocity
exceeds 1e3 (rad/s or m/s) has diverged: its state is zeroed where non-finite so the terminal observation stays
finite, and the env terminates it.
"""

from __future__ import annotations

import mujoco
import numpy as np

# Beyond these the physics has diverged: the env is terminated and counted, never passed on silently.
_MAX_ABS_QVEL = 1.0e3
_ACTION_TOLERANCE = 1.0e-6


def fullphysics_layout(model: mujoco.MjModel, nstate: int) -> tuple[int, int]:
    """Where qpos and qvel start in the ``mjSTATE_FULLPHYSICS`` state ([time, qpos, qvel, ...]), checked on a
    probe state; ``RuntimeError`` if this MuJoCo version lays it out otherwise."""
    qpos_start = int(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME))
    qvel_start = qpos_start + model.nq
    data = mujoco.MjData(model)
    data.qpos[:] = np.arange(model.nq) + 1.0
    data.qvel[:] = -np.arange(model.nv) - 1.0
    state = np.zeros(nstate)
    mujoco.mj_getState(model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    if not (
        np.array_equal(state[qpos_start:qvel_start], data.qpos)
        and np.array_equal(state[qvel_start : qvel_start + model.nv], data.qvel)
    ):
        raise RuntimeError("unexpected mjSTATE_FULLPHYSICS layout in this MuJoCo version")
    return qpos_start, qvel_start


def checked_actions(actions: np.ndarray, num_envs: int, num_joints: int) -> np.ndarray:
    """``actions`` as a (num_envs, num_joints) float64 array clipped to [-1, 1]; ``ValueError`` for a wrong shape
    (a flat array of the right size is reshaped), NaN or inf, or entries beyond [-1, 1] by more than 1e-6."""
    expected = (num_envs, num_joints)
    try:
        array = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"actions must be numeric with shape {expected}: {exc}") from exc
    if array.shape != expected:
        if array.size == num_envs * num_joints and array.ndim != 2:
            array = array.reshape(expected)
        else:
            raise ValueError(f"actions must have shape {expected} (num_envs, num_joints), got {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        bad_envs = np.flatnonzero(~finite.all(axis=1)).tolist()
        raise ValueError(f"actions contain NaN or inf for envs {bad_envs[:10]}; refusing to step the simulator")
    if np.abs(array).max() > 1.0 + _ACTION_TOLERANCE:
        raise ValueError(
            f"actions must be normalized to [-1, 1] (the contract maps them to raw bounds), got max |a| = "
            f"{np.abs(array).max():.4g}"
        )
    clipped: np.ndarray = np.clip(array, -1.0, 1.0)
    return clipped


def sanitize_diverged(state: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """(N,) bool: the rows of ``state`` (N, nstate) that diverged (non-finite, or ``|qvel|`` above the bound;
    ``qvel`` is the (N, nv) view into ``state``). Their non-finite entries are set to 0 in place."""
    with np.errstate(invalid="ignore"):
        # NaN compares False, so a NaN row fails the "all finite and bounded" test.
        ok = np.isfinite(state).all(axis=1) & (np.abs(qvel) <= _MAX_ABS_QVEL).all(axis=1)
    bad: np.ndarray = ~ok
    if bad.any():
        # Keep the numbers finite for the terminal observation; the env is reset this step.
        state[bad] = np.nan_to_num(state[bad], nan=0.0, posinf=0.0, neginf=0.0)
    return bad
