"""Isaac Lab backend: the contract's A1 flat task in Isaac Lab, as a Stable-Baselines3 ``VecEnv``.

``make_isaaclab_env(contract, num_envs)`` builds Isaac Lab's own A1 flat task (``gym.make(task_id,
cfg=env_cfg)``), wraps it with Isaac Lab's ``Sb3VecEnvWrapper`` and then with
:class:`NormalizedActionVecEnv`, so the trainer sees what the embedded MuJoCo env shows it: actions
``a in [-1, 1]^12`` mapped to raw by ``contract.action_bounds.to_raw``. Before it returns, the live
env's joint order and policy observation layout are held against the contract (:func:`check_layout`).
Isaac Lab is imported inside the function only; this module imports without it.

How to run on a workstation (Linux x86_64, NVIDIA GPU, Python 3.12):

1. ``python3.12 -m venv .venv && .venv/bin/pip install -e ".[isaaclab,test]"``. Do not install
   ``torch==2.13.0`` first as on CPU boxes: Isaac Lab 3.0 pins ``torch==2.11.0``.
2. Check the install: ``.venv/bin/python -c "import isaaclab, isaaclab_rl, isaaclab_tasks, isaacsim"``.
   The A1 flat task runs on Isaac Sim's PhysX, which needs the ``isaacsim`` package; if that import
   fails, ``.venv/bin/pip install "isaaclab[isaacsim]==3.0.*"``. Isaac Sim asks once to accept its
   EULA (``OMNI_KIT_ACCEPT_EULA=YES`` accepts it non-interactively); the first run fetches the A1 USD
   from NVIDIA's cloud.
3. Train: ``.venv/bin/python -m pretrain train --sim isaaclab --algo sac --num-envs 1024 ...``
   (the other flags as for ``--sim mujoco``; ``python -m pretrain train --help`` lists them).
   It runs headless; Isaac Lab 3.x gives the task ``IsaacContrib-Velocity-Flat-UnitreeA1``, 2.x
   ``Isaac-Velocity-Flat-Unitree-A1-v0`` (:data:`TASK_IDS`).
4. If construction fails with a :class:`~a1_contract.ContractError`, the running Isaac Lab disagrees
   with the contract (joint order, observation terms, rates); the message names what differs.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from a1_contract import ActionBounds, ContractError, TaskContract
from a1_contract.variants import ISAACLAB2_TASK_ID, ISAACLAB3_TASK_ID

TASK_IDS: dict[str, str] = {"3": ISAACLAB3_TASK_ID, "2": ISAACLAB2_TASK_ID}
"""Isaac Lab major version -> gym id of the A1 flat velocity task."""

INSTALL_HINT = (
    "Isaac Lab is not importable. The Isaac Lab backend needs a Linux workstation with an NVIDIA GPU and "
    "Python 3.12: pip install -e '.[isaaclab]' (i.e. a1-sim2real[isaaclab], which brings Isaac Lab 3 and "
    "torch 2.11). See README.md, section 'Isaac Lab backend (GPU workstation)'. Without a GPU use --sim mujoco."
)

# Isaac Lab's policy observation terms of the velocity task (ObservationsCfg.PolicyCfg, flat: height_scan
# removed). Their names are ours (a1_contract.variants), so no renaming is needed.
ISAACLAB_POLICY_TERMS = (
    "base_lin_vel",
    "base_ang_vel",
    "projected_gravity",
    "velocity_commands",
    "joint_pos",
    "joint_vel",
    "actions",
)
_ACTION_TOLERANCE = 1.0e-6


def check_layout(joint_names: Sequence[str], obs_terms: Sequence[tuple[str, int]], contract: TaskContract) -> None:
    """Raise :class:`ContractError` naming every difference between an env's layout and the contract's.

    ``joint_names``: the env's joint order (``env.unwrapped.scene["robot"].joint_names``).
    ``obs_terms``: its policy observation terms in order, as ``(name, flat dim)``.
    """
    problems: list[str] = []
    got_joints, want_joints = list(joint_names), list(contract.joint_names)
    if len(got_joints) != len(want_joints):
        problems.append(f"env has {len(got_joints)} joints, contract has {len(want_joints)}")
    for i, (got, want) in enumerate(zip(got_joints, want_joints, strict=False)):
        if got != want:
            problems.append(f"joint at index {i} is {got!r}, contract says {want!r}")

    got_terms = {name: int(dim) for name, dim in obs_terms}
    want_terms = {t.name: t.dim for t in contract.obs_terms}
    missing = [n for n in want_terms if n not in got_terms]
    extra = [n for n in got_terms if n not in want_terms]
    if missing:
        problems.append(f"obs terms missing from the env: {missing}")
    if extra:
        problems.append(f"obs terms the contract does not have: {extra}")
    got_order = [n for n in got_terms if n in want_terms]
    want_order = [n for n in want_terms if n in got_terms]
    if got_order != want_order:
        problems.append(f"obs terms reordered: env {got_order}, contract {want_order}")
    for name in want_order:
        if got_terms[name] != want_terms[name]:
            problems.append(
                f"obs term {name!r} has dim {got_terms[name]} in the env, {want_terms[name]} in the contract"
            )
    if problems:
        raise ContractError(
            f"Isaac Lab env layout does not match contract {contract.name!r} ({contract.hash}): " + "; ".join(problems)
        )


def normalized_to_raw(actions: Any, bounds: ActionBounds) -> np.ndarray:
    """Normalized actions (N, J) in [-1, 1] -> raw actions (float32), as the MuJoCo env maps them.

    Refuses non-finite actions and ``|a| > 1`` (beyond float tolerance), like the MuJoCo env.
    """
    array = np.asarray(actions, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(bounds.low):
        raise ValueError(f"actions must have shape (num_envs, {len(bounds.low)}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("actions contain NaN or inf; refusing to step the simulator")
    if np.abs(array).max(initial=0.0) > 1.0 + _ACTION_TOLERANCE:
        raise ValueError(f"actions must be normalized to [-1, 1], got max |a| = {np.abs(array).max():.4g}")
    return bounds.to_raw(np.clip(array, -1.0, 1.0)).astype(np.float32)


class NormalizedActionVecEnv(VecEnvWrapper):
    """Exposes ``Box(-1, 1)`` actions and forwards ``contract.action_bounds.to_raw(a)`` to the env below.

    ``close()`` also stops the simulation app this module started (``on_close``).
    """

    def __init__(self, venv: VecEnv, contract: TaskContract, on_close: contextlib.ExitStack | None = None) -> None:
        action_space = spaces.Box(-1.0, 1.0, (contract.num_joints,), np.float32)
        super().__init__(venv, action_space=action_space)
        self.contract = contract
        self._on_close = on_close

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(normalized_to_raw(actions, self.contract.action_bounds))

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()

    def close(self) -> None:
        try:
            self.venv.close()
        finally:
            if self._on_close is not None:
                self._on_close.close()


def resolve_task_id(isaaclab_version: str, task_id: str | None = None) -> str:
    """``task_id`` if given, else the A1 flat task of Isaac Lab ``isaaclab_version`` ("3", "3.0.0", "2.3.2")."""
    if task_id:
        return task_id
    major = str(isaaclab_version).split(".")[0]
    if major not in TASK_IDS:
        raise ValueError(f"unsupported Isaac Lab version {isaaclab_version!r}; known majors: {sorted(TASK_IDS)}")
    return TASK_IDS[major]


def make_isaaclab_env(
    contract: TaskContract,
    num_envs: int,
    *,
    seed: int = 0,
    task_id: str | None = None,
    device: str = "cuda:0",
    headless: bool = True,
    isaaclab_version: str | None = None,
) -> VecEnv:
    """Isaac Lab's A1 flat task, checked against ``contract``, with normalized actions (see module docstring).

    ``isaaclab_version`` ("2" or "3") picks the launch path and default task; ``None`` detects it.
    Raises ImportError (with install instructions) when Isaac Lab is absent, ContractError on a mismatch.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
    try:
        import isaaclab.app as isaaclab_app
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    if isaaclab_version is None:  # 3.x launches with launch_simulation(); 2.x only has AppLauncher
        isaaclab_version = "3" if hasattr(isaaclab_app, "launch_simulation") else "2"
    major = str(isaaclab_version).split(".")[0]
    task = resolve_task_id(major, task_id)
    if contract.sources.get("task") not in (None, task):
        warnings.warn(
            f"contract {contract.name!r} describes task {contract.sources['task']!r}, the env runs {task!r}: "
            "their domain randomization differs (A1_TASK_CONTRACT.md section 9.1)",
            stacklevel=2,
        )
    app = contextlib.ExitStack()  # closed by the returned env's close(): stops the simulation app
    try:
        venv = _build(isaaclab_app, app, major, task, contract, int(num_envs), seed, device, headless)
    except ImportError as exc:
        app.close()
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    except BaseException:
        app.close()
        raise
    return NormalizedActionVecEnv(venv, contract, on_close=app)


def _build(
    isaaclab_app: Any,
    app: contextlib.ExitStack,
    major: str,
    task: str,
    contract: TaskContract,
    num_envs: int,
    seed: int,
    device: str,
    headless: bool,
) -> VecEnv:
    if major == "2":  # 2.x: the app must run before any other Isaac Lab import
        launcher = isaaclab_app.AppLauncher(headless=headless, device=device)
        app.callback(launcher.app.close)
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401  (registers the tasks; 3.x allows this before the launch)
    from isaaclab_rl.sb3 import Sb3VecEnvWrapper
    from isaaclab_tasks.utils import parse_env_cfg

    env_cfg = parse_env_cfg(task, device=device, num_envs=num_envs)
    env_cfg.seed = seed
    ours = {t.name for t in contract.obs_terms}
    for name in ISAACLAB_POLICY_TERMS:  # reduced contracts (no_base_lin_vel) drop terms from Isaac Lab's cfg
        if name not in ours and getattr(env_cfg.observations.policy, name, None) is not None:
            setattr(env_cfg.observations.policy, name, None)
    if hasattr(env_cfg, "compute_final_obs"):
        # 3.x: keep the observation before the same-step reset; Sb3VecEnvWrapper reports it as
        # terminal_observation, so SAC/TQC bootstrap time-outs from the true last state.
        env_cfg.compute_final_obs = True
    else:
        warnings.warn(
            f"Isaac Lab {major}.x has no env_cfg.compute_final_obs: terminal_observation is the observation AFTER "
            "the reset, so time-outs bootstrap from the next episode's first state (biased off-policy targets)",
            stacklevel=3,
        )
    if not math.isclose(env_cfg.actions.joint_pos.scale, contract.action_scale):
        raise ContractError(f"{task} action scale {env_cfg.actions.joint_pos.scale}, contract {contract.action_scale}")
    if major != "2":
        app.enter_context(isaaclab_app.launch_simulation(env_cfg, {"headless": headless, "device": device}))

    env = gym.make(task, cfg=env_cfg)
    app.callback(env.close)  # runs before the app stops; a second close() of the env is harmless
    base = env.unwrapped
    manager = base.observation_manager
    terms = [
        (name, math.prod(shape))
        for name, shape in zip(manager.active_terms["policy"], manager.group_obs_term_dim["policy"], strict=True)
    ]
    check_layout(base.scene["robot"].joint_names, terms, contract)
    if not math.isclose(base.step_dt, contract.policy_dt) or base.max_episode_length != contract.max_episode_steps:
        raise ContractError(
            f"{task} steps every {base.step_dt} s for {base.max_episode_length} steps, contract: "
            f"{contract.policy_dt} s for {contract.max_episode_steps} steps"
        )
    # Action mapping. Sb3VecEnvWrapper's action_bounds is ONE scalar (low, high) pair (3.x checks
    # np.isfinite(low) and low < high, so per-joint arrays are refused). It only DECLARES the Box for SB3
    # when the env's action space is unbounded: step_async forwards actions unchanged (no clip, no
    # rescale) and Isaac Lab treats them as raw (target = default + 0.25 * raw). Per-joint contract
    # bounds cannot be expressed by the wrapper, so we ask it for (-1, 1) (3.x; 2.x always declares
    # (-100, 100)) and put NormalizedActionVecEnv on top: it declares Box(-1, 1) itself and sends
    # to_raw(a) down, the same normalized space and mapping as the MuJoCo env.
    wrapper_kwargs: dict[str, Any] = {"action_bounds": (-1.0, 1.0)} if major != "2" else {}
    return Sb3VecEnvWrapper(env, fast_variant=True, **wrapper_kwargs)
