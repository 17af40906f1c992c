"""SAC and TQC with delayed actor updates: ``train()`` overridden, nothing else.

Per gradient step: one critic update (and a Polyak update of the target critics every
``target_update_interval`` steps); every ``policy_delay``-th step also one actor update and one
entropy-coefficient update. ``policy_delay=1`` is SB3's SAC/TQC update schedule. Two things make the
loop cheaper than SB3's without changing the maths: the critics' parameters do not accumulate
gradients from the actor loss (they are frozen during its backward pass), and losses are read back
with one ``.item()`` per ``train()`` call instead of several per gradient step.

The counter that decides when the actor updates is ``_n_updates`` (saved with the model), so a
resumed run keeps the same schedule.
"""

from __future__ import annotations

from typing import Any

import torch as th
from sb3_contrib import TQC
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3 import SAC
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F


class _DelayedActorUpdates:
    """Mixin: the update loop shared by SAC and TQC; the two differ in ``_critic_loss`` and ``_actor_q``."""

    policy_delay: int
    actor_anchor: Any = None
    """Fine-tuning: a frozen copy of an earlier actor the actor is pulled towards (None: plain SAC/TQC)."""
    anchor_weight: float = 0.0
    """Weight of the anchor term, relative to the batch's mean |Q| (TD3+BC's scaling): the actor loss gains
    ``anchor_weight * mean|Q| * mean_batch(sum_j (a_j - anchor_j)^2)`` on the deterministic actions in [-1, 1]."""

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor_anchor", "anchor_weight", "_anchor_distances"]

    def _init_policy_delay(self, policy_delay: int) -> None:
        if int(policy_delay) < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        self.policy_delay = int(policy_delay)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: Any) -> th.Tensor:
        raise NotImplementedError

    def _actor_q(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        critic_losses, actor_losses, ent_coef_losses, ent_coefs = [], [], [], []
        self._anchor_distances: list[th.Tensor] = []
        # Frozen during the actor's backward pass; parameters shared with the actor (a shared features
        # extractor) keep learning from the actor loss.
        actor_params = {id(p) for p in self.actor.parameters()}
        critic_only = [p for p in self.critic.parameters() if id(p) not in actor_params]
        for step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = data.discounts if data.discounts is not None else self.gamma
            if self.use_sde:
                self.actor.reset_noise()
            update_actor = (self._n_updates + step) % self.policy_delay == 0
            if update_actor:  # sampled before the critic target, in SB3's order (same noise, same seed)
                actions_pi, log_prob = self.actor.action_log_prob(data.observations)
                log_prob = log_prob.reshape(-1, 1)
            if self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef)

            critic_loss = self._critic_loss(data, ent_coef, discounts)
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            critic_losses.append(critic_loss.detach())

            if update_actor:
                for p in critic_only:
                    p.requires_grad_(False)
                try:
                    q_pi = self._actor_q(data.observations, actions_pi)
                    actor_loss = (ent_coef * log_prob - q_pi).mean()
                    if self.actor_anchor is not None and self.anchor_weight > 0:
                        actor_loss = actor_loss + self._anchor_loss(data.observations, q_pi)
                    self.actor.optimizer.zero_grad()
                    actor_loss.backward()
                finally:
                    for p in critic_only:
                        p.requires_grad_(True)
                self.actor.optimizer.step()
                actor_losses.append(actor_loss.detach())
                if self.ent_coef_optimizer is not None:
                    ent_coef_loss = -(self.log_ent_coef * (log_prob.detach() + self.target_entropy)).mean()
                    self.ent_coef_optimizer.zero_grad()
                    ent_coef_loss.backward()
                    self.ent_coef_optimizer.step()
                    ent_coef_losses.append(ent_coef_loss.detach())

            if step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", _mean(ent_coefs))
        self.logger.record("train/critic_loss", _mean(critic_losses))
        if actor_losses:
            self.logger.record("train/actor_loss", _mean(actor_losses))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", _mean(ent_coef_losses))
        if self._anchor_distances:
            self.logger.record("train/anchor_distance", _mean(self._anchor_distances))

    def _anchor_loss(self, obs: th.Tensor, q_pi: th.Tensor) -> th.Tensor:
        with th.no_grad():
            anchor = self.actor_anchor(obs, deterministic=True)
        distance = (self.actor(obs, deterministic=True) - anchor).pow(2).sum(dim=1).mean()
        self._anchor_distances.append(distance.detach())
        return self.anchor_weight * q_pi.abs().mean().detach() * distance


def _mean(values: list[th.Tensor]) -> float:
    return float(th.stack([v.reshape(()) for v in values]).mean().item()) if values else float("nan")


class DelayedSAC(_DelayedActorUpdates, SAC):
    """SB3 ``SAC`` with ``policy_delay``: actor and entropy coefficient update every ``policy_delay`` critic updates.

    Args:
        policy_delay: critic updates per actor update (1 = SB3's schedule).
        *args, **kwargs: as for ``stable_baselines3.SAC``.
    """

    def __init__(self, *args: Any, policy_delay: int = 1, **kwargs: Any) -> None:
        self._init_policy_delay(policy_delay)
        super().__init__(*args, **kwargs)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: Any) -> th.Tensor:
        with th.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
            next_q = th.cat(self.critic_target(data.next_observations, next_actions), dim=1)
            next_q, _ = th.min(next_q, dim=1, keepdim=True)
            next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
            target_q = data.rewards + (1 - data.dones) * discounts * next_q
        current_q = self.critic(data.observations, data.actions)
        return 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)

    def _actor_q(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        q_values = th.cat(self.critic(obs, actions), dim=1)
        return th.min(q_values, dim=1, keepdim=True)[0]


class DelayedTQC(_DelayedActorUpdates, TQC):
    """sb3-contrib ``TQC`` with ``policy_delay`` (see :class:`DelayedSAC`)."""

    def __init__(self, *args: Any, policy_delay: int = 1, **kwargs: Any) -> None:
        self._init_policy_delay(policy_delay)
        super().__init__(*args, **kwargs)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: Any) -> th.Tensor:
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
        return self.critic(obs, actions).mean(dim=2).mean(dim=1, keepdim=True)


__all__ = ["DelayedSAC", "DelayedTQC"]
