"""Collect and learn at the same time: the learner's update runs while the simulator computes the next step.

SB3's off-policy loop alternates: collect ``train_freq`` steps, then ``train(gradient_steps)``. On a CPU the two
use one core each in turn. Here the update that SB3 asks for after a collection is deferred to the next
``env.step``: :class:`UpdateWhileStepping` (the outermost ``VecEnv`` wrapper, what the model holds as its
``env``) runs it between ``step_async``, which has started the physics on a worker thread
(``A1MujocoVecEnv(background=True)``), and ``step_wait``. The gradient steps run in the main thread (torch
releases the GIL in its kernels), the robots on the other core (``mujoco.rollout`` releases the GIL).

What changes in the algorithm, and only this: the action of step t+1 is chosen by the policy *before* the
update that followed step t (one update's lag: ``gradient_steps`` gradient steps, ``gradient_steps /
policy_delay`` actor updates). Every update samples from a buffer that holds every transition collected so far,
exactly as in the sequential loop, and the number of gradient steps per environment step is the configured one.
The last deferred update runs when ``learn`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


class UpdateWhileStepping(VecEnvWrapper):
    """Runs ``during_step`` (the model's deferred update) while the wrapped env computes a step."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.during_step: Callable[[], None] | None = None

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        if self.during_step is not None:
            self.during_step()
        return self.venv.step_wait()


def update_while_stepping(model: Any, env: UpdateWhileStepping) -> None:
    """Defer ``model``'s updates (a :class:`~a1_common.algos.DelayedSAC`/``DelayedTQC``) into ``env``'s steps.

    ``env`` must be the env the model collects with (``model.env``)."""
    if model.env is not env:
        raise ValueError("update_while_stepping: env must be the model's own env (model.env)")
    if not hasattr(model, "run_deferred_update"):
        raise TypeError(f"{type(model).__name__} cannot defer its updates (DelayedSAC / DelayedTQC can)")
    model.defer_updates = True
    env.during_step = model.run_deferred_update
