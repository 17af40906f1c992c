"""SAC and TQC with delayed actor updates: ``train()`` overridden, nothing else.

Per gradient step: one critic update (and a Polyak update of the target critics every
``target_update_interval`` steps); every ``policy_delay``-th step also one actor update and one
entropy-coefficient update. ``policy_delay=1`` is SB3's SAC/TQC update schedule.

Two implementations of that update, the same maths:

* the fast update (``fast_update=True``, the default; :mod:`a1_common.algos.delayed_fast`): no autograd, every
  network differentiated by hand, replay indices drawn once per ``train()`` call; SB3's MLP policies only.
* the reference loop (``fast_update=False``; :mod:`a1_common.algos.delayed_updates`), step by step on SB3's
  modules with autograd; also what runs where the fast update does not apply (gSDE, other extractors or layers).

The schedule, the deferred update and the extension points are in :mod:`a1_common.algos.delayed_updates`; this
module holds what differs between SAC and TQC: the critic loss and the actor's Q, each in both implementations.
"""

from __future__ import annotations

from typing import Any, cast

import torch as th
from sb3_contrib import TQC
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3 import SAC
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

from a1_common.algos import fast_update as fast
from a1_common.algos.delayed_fast import _FastUpdates


class DelayedSAC(_FastUpdates, SAC):
    """SB3 ``SAC`` with ``policy_delay``: actor and entropy coefficient update every ``policy_delay`` critic updates.

    Args:
        policy_delay: critic updates per actor update (1 = SB3's schedule).
        fast_update: the fast update (same maths, see the module docstring); False: the reference loop.
        *args, **kwargs: as for ``stable_baselines3.SAC``.
    """

    def __init__(self, *args: Any, policy_delay: int = 1, fast_update: bool = True, **kwargs: Any) -> None:
        self._init_policy_delay(policy_delay, fast_update)
        super().__init__(*args, **kwargs)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: th.Tensor | float) -> th.Tensor:
        with th.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
            next_q = th.cat(self.critic_target(data.next_observations, next_actions), dim=1)
            next_q, _ = th.min(next_q, dim=1, keepdim=True)
            next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
            target_q = data.rewards + (1 - data.dones) * discounts * next_q
        current_q = self.critic(data.observations, data.actions)
        return cast(th.Tensor, 0.5 * sum(F.mse_loss(q, target_q) for q in current_q))  # a sum of tensors

    def _actor_q(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        q_values = th.cat(self.critic(obs, actions), dim=1)
        return th.min(q_values, dim=1, keepdim=True)[0]

    def _fast_target(
        self,
        next_q: list[th.Tensor],
        ent_coef: th.Tensor,
        next_log_prob: th.Tensor,
        data: ReplayBufferSamples,
        discounts: th.Tensor | float,
    ) -> th.Tensor:
        next_v = th.cat(next_q, dim=1).min(dim=1, keepdim=True)[0] - ent_coef * next_log_prob
        return data.rewards + (1 - data.dones) * discounts * next_v

    def _fast_critic_loss(self, current: list[th.Tensor], target: th.Tensor) -> tuple[th.Tensor, list[th.Tensor]]:
        # 0.5 * sum over critics of the MSE over the batch; d/dq = (q - target) / batch
        diffs = [q - target for q in current]
        loss = 0.5 * th.stack([d.square().mean() for d in diffs]).sum()
        return loss, [d.mul_(1.0 / target.shape[0]) for d in diffs]

    def _fast_actor_q(self, q: list[th.Tensor], grad: float) -> tuple[th.Tensor, list[th.Tensor]]:
        q_pi, idx = th.cat(q, dim=1).min(dim=1, keepdim=True)  # the gradient goes to the smallest
        return q_pi, [(idx == i).to(q_pi.dtype).mul_(grad) for i in range(len(q))]


class DelayedTQC(_FastUpdates, TQC):
    """sb3-contrib ``TQC`` with ``policy_delay`` (see :class:`DelayedSAC`)."""

    def __init__(self, *args: Any, policy_delay: int = 1, fast_update: bool = True, **kwargs: Any) -> None:
        self._init_policy_delay(policy_delay, fast_update)
        super().__init__(*args, **kwargs)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: th.Tensor | float) -> th.Tensor:
        batch_size = data.observations.shape[0]
        with th.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
            next_quantiles = self.critic_target(data.next_observations, next_actions)
            n_target = self.critic.quantiles_total - self.top_quantiles_to_drop_per_net * self.critic.n_critics
            next_quantiles, _ = th.sort(next_quantiles.reshape(batch_size, -1))
            next_quantiles = next_quantiles[:, :n_target]
            target = next_quantiles - ent_coef * next_log_prob.reshape(-1, 1)
            target = (data.rewards + (1 - data.dones) * discounts * target).unsqueeze(1)
        current = self.critic(data.observations, data.actions)
        return quantile_huber_loss(current, target, sum_over_quantiles=False)

    def _actor_q(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        quantiles: th.Tensor = self.critic(obs, actions)  # (batch, n_critics, n_quantiles)
        return quantiles.mean(dim=2).mean(dim=1, keepdim=True)

    def _fast_target(
        self,
        next_q: list[th.Tensor],
        ent_coef: th.Tensor,
        next_log_prob: th.Tensor,
        data: ReplayBufferSamples,
        discounts: th.Tensor | float,
    ) -> th.Tensor:
        n_target = self.critic.quantiles_total - self.top_quantiles_to_drop_per_net * self.critic.n_critics
        # The n_target smallest of all critics' quantiles (SB3 sorts them all and keeps the first n_target; the
        # loss sums over targets, so their order does not matter and a partial selection is cheaper)
        next_quantiles = th.topk(th.cat(next_q, dim=1), n_target, dim=1, largest=False, sorted=False)[0]
        target = next_quantiles - ent_coef * next_log_prob
        return (data.rewards + (1 - data.dones) * discounts * target).unsqueeze(1)

    def _fast_critic_loss(self, current: list[th.Tensor], target: th.Tensor) -> tuple[th.Tensor, list[th.Tensor]]:
        loss, grad = fast.quantile_huber(th.stack(current, dim=1), target)
        return loss, [grad[:, i] for i in range(len(current))]

    def _fast_actor_q(self, q: list[th.Tensor], grad: float) -> tuple[th.Tensor, list[th.Tensor]]:
        q_pi = th.stack(q, dim=1).mean(dim=2).mean(dim=1, keepdim=True)
        each = th.full_like(q[0], grad / (len(q) * q[0].shape[1]))
        return q_pi, [each] * len(q)


__all__ = ["DelayedSAC", "DelayedTQC"]
