"""SAC and TQC with delayed actor updates: ``train()`` overridden, nothing else.

Per gradient step: one critic update (and a Polyak update of the target critics every
``target_update_interval`` steps); every ``policy_delay``-th step also one actor update and one
entropy-coefficient update. ``policy_delay=1`` is SB3's SAC/TQC update schedule.

Two implementations of that update, the same maths:

* the fast update (``fast_update=True``, the default; :meth:`_DelayedActorUpdates._train_fast`): replay
  indices drawn once per ``train()`` call (one buffer gather, sliced per step); no autograd: every network
  evaluated through functional ops on SB3's own modules and differentiated by hand with the kernels autograd
  would use (:mod:`a1_common.algos.fast_update`); Adam/AdamW through torch's fused kernel on CPU; a foreach
  Polyak update; losses read back once per call. SB3's modules stay the source of truth (state dict, saving,
  loading, optimizers, ONNX export). It covers SB3's MLP policies (ELU/ReLU/Tanh/SiLU, LayerNorm critics,
  flat observations); anything else (gSDE, other extractors or layers) runs the reference loop.
* the reference loop (``fast_update=False``; :meth:`_DelayedActorUpdates._train_reference`), step by step on
  SB3's modules with autograd. Cheaper than SB3's own loop without changing the maths: the critics'
  parameters do not accumulate gradients from the actor loss (they are frozen during its backward pass),
  and losses are read back with one ``.item()`` per ``train()`` call instead of several per gradient step.

What differs between the two besides speed: rounding, and the order of the random draws for the replay
indices (one draw of ``batch_size * gradient_steps`` indices instead of one per step: the same distribution;
the same indices when ``gradient_steps=1``). The actor's noise is drawn in the same order.

The counter that decides when the actor updates is ``_n_updates`` (saved with the model), so a
resumed run keeps the same schedule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib import TQC
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from a1_common.algos import fast_update as fast

_SAMPLE_ROWS = 1 << 17
"""At most this many transitions are gathered from the replay buffer at once (the rest in further calls)."""


@dataclass
class _FastPlan:
    actor: fast.ActorNet
    critics: list[fast.MLP]
    targets: list[fast.MLP]


class _DelayedActorUpdates:
    """Mixin: the update loop shared by SAC and TQC; the two differ in ``_critic_loss`` and ``_actor_q`` (and
    their ``_fast_*`` counterparts)."""

    policy_delay: int
    fast_update: bool = True
    """The fast update (:meth:`_train_fast`); False: the reference loop (:meth:`_train_reference`). Not saved."""
    defer_updates: bool = False
    """``train()`` only records the update it is asked for; :meth:`run_deferred_update` runs it (during the next
    env step: :mod:`a1_common.algos.concurrent`). Not saved."""
    _deferred_update: tuple[int, int] | None = None
    _fast_cache: Any = None
    _extra_logs: dict[str, list[th.Tensor]]
    """Values an extra actor-loss term logs during one update (key -> one tensor per gradient step): their means
    are recorded with the update's own."""

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_extra_logs",
            "fast_update",
            "defer_updates",
            "_deferred_update",
            "_fast_cache",
        ]

    def _init_policy_delay(self, policy_delay: int, fast_update: bool = True) -> None:
        if int(policy_delay) < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        self.policy_delay = int(policy_delay)
        self.fast_update = bool(fast_update)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: Any) -> th.Tensor:
        raise NotImplementedError

    def _actor_q(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    # ---- what a subclass may add to the actor loss (fine-tuning's anchor: finetune.anchored) ----------
    def _actor_loss_term(self, obs: th.Tensor, q_pi: th.Tensor) -> th.Tensor | None:
        """An extra term of the actor loss in the reference loop (autograd, on ``self.actor``); None: none."""
        return None

    def _fast_actor_loss_term(
        self, obs: th.Tensor, q_pi: th.Tensor, mean: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor] | None:
        """The same term in the fast update: ``(value, its gradient with respect to the actor's Gaussian mean)``;
        None: none."""
        return None

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self.defer_updates:
            self.run_deferred_update()  # at most one update waits
            self._deferred_update = (gradient_steps, batch_size)
            return
        self._update(gradient_steps, batch_size)

    def run_deferred_update(self) -> None:
        """Run the update ``train()`` deferred, if any (the collection then continues in evaluation mode)."""
        if self._deferred_update is not None:
            (gradient_steps, batch_size), self._deferred_update = self._deferred_update, None
            self._update(gradient_steps, batch_size)
            self.policy.set_training_mode(False)

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        try:
            model = super().learn(*args, **kwargs)
        except BaseException:
            self._deferred_update = None
            raise
        self.run_deferred_update()  # the last one: the sequential loop's count of gradient steps
        return model

    def _update(self, gradient_steps: int, batch_size: int) -> None:
        plan = self._fast_plan() if self.fast_update else None
        if plan is None:
            self._train_reference(gradient_steps, batch_size)
        else:
            self._train_fast(plan, gradient_steps, batch_size)

    def _train_reference(self, gradient_steps: int, batch_size: int = 64) -> None:
        """The update loop on SB3's modules with autograd, step by step (``fast_update=False``; what the fast
        update is tested against)."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        critic_losses, actor_losses, ent_coef_losses, ent_coefs = [], [], [], []
        self._extra_logs = {}
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
                    term = self._actor_loss_term(data.observations, q_pi)
                    if term is not None:
                        actor_loss = actor_loss + term
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
        for key, values in self._extra_logs.items():
            if values:
                self.logger.record(key, _mean(values))

    # ---- the fast update ------------------------------------------------------------------------------

    def _fast_plan(self) -> _FastPlan | None:
        """The hand-differentiated networks over the current modules (rebuilt when a module is replaced); None
        where the fast update does not apply (gSDE, observations that are not a flat float32 Box, features
        extractors other than SB3's FlattenExtractor, layers other than Linear/LayerNorm/ELU/ReLU/Tanh/SiLU)."""
        key = (self.actor, self.critic, self.critic_target)
        cache = self._fast_cache
        if cache is not None and all(a is b for a, b in zip(cache[0], key, strict=True)):
            return cache[1]
        plan = None
        space = self.observation_space
        flat = isinstance(space, spaces.Box) and len(space.shape) == 1 and str(space.dtype) == "float32"
        if not self.use_sde and flat and fast.uses_flat_features(self.actor, self.critic, self.critic_target):
            try:
                plan = _FastPlan(
                    actor=fast.ActorNet(self.actor),
                    critics=[fast.MLP(net) for net in self.critic.q_networks],
                    targets=[fast.MLP(net) for net in self.critic_target.q_networks],
                )
            except (ValueError, AttributeError):
                plan = None
        self._fast_cache = (key, plan)
        return plan

    def _fast_target(
        self,
        next_q: list[th.Tensor],
        ent_coef: th.Tensor,
        next_log_prob: th.Tensor,
        data: ReplayBufferSamples,
        discounts: Any,
    ) -> th.Tensor:
        """The critics' regression target from the target critics' outputs (one (batch, out) per critic)."""
        raise NotImplementedError

    def _fast_critic_loss(self, current: list[th.Tensor], target: th.Tensor) -> tuple[th.Tensor, list[th.Tensor]]:
        """The critic loss and its gradient with respect to each critic's output."""
        raise NotImplementedError

    def _fast_actor_q(self, q: list[th.Tensor], grad: float) -> tuple[th.Tensor, list[th.Tensor]]:
        """``_actor_q`` (batch, 1) from the critics' outputs, and the gradient with respect to each output given
        ``grad``, the loss's gradient with respect to every element of ``_actor_q``."""
        raise NotImplementedError

    def _sampled_batches(self, gradient_steps: int, batch_size: int) -> Iterator[ReplayBufferSamples]:
        """``gradient_steps`` batches: for SB3's buffers (uniform, with replacement) drawn in one ``sample`` call
        of ``batch_size * gradient_steps`` transitions (in chunks of at most ``_SAMPLE_ROWS``) and sliced; from
        any other buffer (e.g. the fine-tuning learner's mix of two) one ``sample(batch_size)`` per step."""
        if not isinstance(self.replay_buffer, ReplayBuffer):
            for _ in range(gradient_steps):
                yield self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            return
        chunk_steps = max(1, min(gradient_steps, _SAMPLE_ROWS // max(batch_size, 1)))
        done = 0
        while done < gradient_steps:
            steps = min(chunk_steps, gradient_steps - done)
            data = self.replay_buffer.sample(batch_size * steps, env=self._vec_normalize_env)
            for i in range(steps):
                lo, hi = i * batch_size, (i + 1) * batch_size
                yield type(data)(*(None if t is None else t[lo:hi] for t in data))
            done += steps

    def _train_fast(self, plan: _FastPlan, gradient_steps: int, batch_size: int = 64) -> None:
        """:meth:`_train_reference`'s update without autograd (see the module docstring)."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        critic_params, target_params = list(self.critic.parameters()), list(self.critic_target.parameters())
        critic_step, actor_step = fast.AdamStep(self.critic.optimizer), fast.AdamStep(self.actor.optimizer)
        ent_coef_step = fast.AdamStep(self.ent_coef_optimizer) if self.ent_coef_optimizer is not None else None
        critic_losses, actor_losses, ent_coef_losses, ent_coefs = [], [], [], []
        self._extra_logs = {}
        with th.no_grad():
            for step, data in enumerate(self._sampled_batches(gradient_steps, batch_size)):
                discounts = data.discounts if data.discounts is not None else self.gamma
                obs = data.observations
                update_actor = (self._n_updates + step) % self.policy_delay == 0
                if update_actor:  # sampled before the critic target, in SB3's order (same noise, same seed)
                    actor_cache: dict[str, Any] = {}
                    actions_pi, log_prob = plan.actor.sample(obs, actor_cache)
                if self.log_ent_coef is not None:
                    ent_coef = th.exp(self.log_ent_coef.detach())
                else:
                    ent_coef = self.ent_coef_tensor
                ent_coefs.append(ent_coef)

                # Critics: regression on the target critics' soft value of the next state.
                next_actions, next_log_prob = plan.actor.sample(data.next_observations)
                next_input = th.cat([data.next_observations, next_actions], dim=1)
                next_q = [net.forward(next_input) for net in plan.targets]
                target = self._fast_target(next_q, ent_coef, next_log_prob, data, discounts)
                critic_input = th.cat([obs, data.actions], dim=1)
                caches: list[list] = [[] for _ in plan.critics]
                current = [net.forward(critic_input, c) for net, c in zip(plan.critics, caches, strict=True)]
                critic_loss, grads = self._fast_critic_loss(current, target)
                critic_step.zero_grad()
                for net, c, grad in zip(plan.critics, caches, grads, strict=True):
                    net.backward(c, grad)
                critic_step()
                critic_losses.append(critic_loss)

                if update_actor:
                    # Actor: the updated critics' value of its own sampled actions, no gradient for the critics.
                    batch = obs.shape[0]
                    q_input = th.cat([obs, actions_pi], dim=1)
                    caches = [[] for _ in plan.critics]
                    q_values = [net.forward(q_input, c) for net, c in zip(plan.critics, caches, strict=True)]
                    q_pi, q_grads = self._fast_actor_q(q_values, -1.0 / batch)
                    actor_loss = (ent_coef * log_prob - q_pi).mean()
                    grad_mean = None
                    term = self._fast_actor_loss_term(obs, q_pi, actor_cache["mean"])
                    if term is not None:
                        term_value, grad_mean = term
                        actor_loss = actor_loss + term_value
                    action_columns = slice(obs.shape[1], None)
                    grad_action = None
                    for net, c, grad in zip(plan.critics, caches, q_grads, strict=True):
                        g = net.backward(c, grad, param_grads=False, input_columns=action_columns)
                        grad_action = g if grad_action is None else grad_action + g
                    actor_step.zero_grad()
                    plan.actor.backward(actor_cache, grad_action, ent_coef / batch, grad_mean)
                    actor_step()
                    actor_losses.append(actor_loss)
                    if ent_coef_step is not None:
                        # -(log_alpha * (log_prob + target_entropy)).mean() and its gradient
                        grad = (log_prob + self.target_entropy).mean().neg().reshape(self.log_ent_coef.shape)
                        ent_coef_losses.append((self.log_ent_coef * grad).sum())
                        self.log_ent_coef.grad = grad
                        ent_coef_step()

                if step % self.target_update_interval == 0:
                    fast.polyak(critic_params, target_params, self.tau)
                    fast.polyak(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        logged = {
            "train/ent_coef": ent_coefs,
            "train/critic_loss": critic_losses,
            "train/actor_loss": actor_losses,
            "train/ent_coef_loss": ent_coef_losses,
            **self._extra_logs,
        }
        # One read-back for all the means; ent_coef and critic_loss are recorded even when empty (NaN), as in
        # the reference loop
        logged = {k: v for k, v in logged.items() if v or k in ("train/ent_coef", "train/critic_loss")}
        nan = th.tensor(float("nan"))
        means = th.stack([th.stack([x.reshape(()) for x in v]).mean() if v else nan for v in logged.values()])
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, value in zip(logged, means.tolist(), strict=True):
            self.logger.record(key, value)


def _mean(values: list[th.Tensor]) -> float:
    return float(th.stack([v.reshape(()) for v in values]).mean().item()) if values else float("nan")


class DelayedSAC(_DelayedActorUpdates, SAC):
    """SB3 ``SAC`` with ``policy_delay``: actor and entropy coefficient update every ``policy_delay`` critic updates.

    Args:
        policy_delay: critic updates per actor update (1 = SB3's schedule).
        fast_update: the fast update (same maths, see the module docstring); False: the reference loop.
        *args, **kwargs: as for ``stable_baselines3.SAC``.
    """

    def __init__(self, *args: Any, policy_delay: int = 1, fast_update: bool = True, **kwargs: Any) -> None:
        self._init_policy_delay(policy_delay, fast_update)
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

    def _fast_target(
        self,
        next_q: list[th.Tensor],
        ent_coef: th.Tensor,
        next_log_prob: th.Tensor,
        data: ReplayBufferSamples,
        discounts: Any,
    ) -> th.Tensor:
        next_q = th.cat(next_q, dim=1).min(dim=1, keepdim=True)[0] - ent_coef * next_log_prob
        return data.rewards + (1 - data.dones) * discounts * next_q

    def _fast_critic_loss(self, current: list[th.Tensor], target: th.Tensor) -> tuple[th.Tensor, list[th.Tensor]]:
        # 0.5 * sum over critics of the MSE over the batch; d/dq = (q - target) / batch
        diffs = [q - target for q in current]
        loss = 0.5 * th.stack([d.square().mean() for d in diffs]).sum()
        return loss, [d.mul_(1.0 / target.shape[0]) for d in diffs]

    def _fast_actor_q(self, q: list[th.Tensor], grad: float) -> tuple[th.Tensor, list[th.Tensor]]:
        q_pi, idx = th.cat(q, dim=1).min(dim=1, keepdim=True)  # the gradient goes to the smallest
        return q_pi, [(idx == i).to(q_pi.dtype).mul_(grad) for i in range(len(q))]


class DelayedTQC(_DelayedActorUpdates, TQC):
    """sb3-contrib ``TQC`` with ``policy_delay`` (see :class:`DelayedSAC`)."""

    def __init__(self, *args: Any, policy_delay: int = 1, fast_update: bool = True, **kwargs: Any) -> None:
        self._init_policy_delay(policy_delay, fast_update)
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

    def _fast_target(
        self,
        next_q: list[th.Tensor],
        ent_coef: th.Tensor,
        next_log_prob: th.Tensor,
        data: ReplayBufferSamples,
        discounts: Any,
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
