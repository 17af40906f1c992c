"""SB3 / sb3-contrib algorithms with the two pieces they lack for massively parallel simulation.

* :class:`DelayedSAC` / :class:`DelayedTQC`: the actor and the entropy coefficient are updated once every
  ``policy_delay`` critic updates (the seed author's Part II preset uses 8).
* ``critic_layer_norm=True`` in ``policy_kwargs`` (:mod:`a1_common.algos.policies`): LayerNorm after
  every hidden layer of the critics, which keeps Q-values bounded with large replay ratios.

Everything else (replay buffer, n-step returns via ``n_steps``, entropy auto-tuning, saving, loading)
is SB3's own; the subclasses override ``train()`` only, with a fast update by default
(:mod:`a1_common.algos.fast_update`: the same maths without autograd; ``fast_update=False`` for the
step-by-step reference loop).
"""

from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from a1_common.algos.delayed import DelayedSAC, DelayedTQC
from a1_common.algos.policies import LayerNormSACPolicy, LayerNormTQCPolicy

ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = {"sac": DelayedSAC, "tqc": DelayedTQC, "ppo": PPO}
"""The model class of each ``algo`` name a bundle's ``meta.json`` may hold (what loads its ``model.zip``)."""

__all__ = ["ALGO_CLASSES", "DelayedSAC", "DelayedTQC", "LayerNormSACPolicy", "LayerNormTQCPolicy"]
