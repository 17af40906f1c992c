"""SB3 / sb3-contrib algorithms with the two pieces they lack for massively parallel simulation.

* :class:`DelayedSAC` / :class:`DelayedTQC`: the actor and the entropy coefficient are updated once every
  ``policy_delay`` critic updates (the seed author's Part II preset uses 8).
* ``critic_layer_norm=True`` in ``policy_kwargs`` (:mod:`pretrain.algos.policies`): LayerNorm after
  every hidden layer of the critics, which keeps Q-values bounded with large replay ratios.

Everything else (replay buffer, n-step returns via ``n_steps``, entropy auto-tuning, saving, loading)
is SB3's own; the subclasses override ``train()`` only, with a fast update by default
(:mod:`pretrain.algos.fast_update`: the same maths without autograd; ``fast_update=False`` for the
step-by-step reference loop).
"""

from pretrain.algos.delayed import DelayedSAC, DelayedTQC
from pretrain.algos.policies import LayerNormSACPolicy, LayerNormTQCPolicy

__all__ = ["DelayedSAC", "DelayedTQC", "LayerNormSACPolicy", "LayerNormTQCPolicy"]
