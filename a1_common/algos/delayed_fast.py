"""The fast update of SAC and TQC with delayed actor updates: :meth:`_FastUpdates._train_fast`.

The same maths as the reference loop (:mod:`a1_common.algos.delayed_updates`) without autograd: replay indices
drawn once per ``train()`` call (one buffer gather, sliced per step); every network evaluated through functional
ops on SB3's own modules and differentiated by hand with the kernels autograd would use
(:mod:`a1_common.algos.fast_update`); Adam/AdamW through torch's fused kernel on CPU; a foreach Polyak update;
losses read back once per call. SB3's modules stay the source of truth (state dict, saving, loading, optimizers,
ONNX export). It covers SB3's MLP policies (ELU/ReLU/Tanh/SiLU, LayerNorm critics, flat observations); anything
else (gSDE, other extractors or layers) runs the reference loop.

What differs from the reference loop besides speed: rounding, and the order of the random draws for the replay
indices (one draw of ``batch_size * gradient_steps`` indices instead of one per step: the same distribution;
the same indices when ``gradient_steps=1``). The actor's noise is drawn in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from a1_common.algos import fast_update as fast
from a1_common.algos.delayed_updates import _DelayedActorUpdates

_SAMPLE_ROWS = 1 << 17
"""At most this many transitions are gathered from the replay buffer at once (the rest in further calls)."""


@dataclass
class _FastPlan:
    actor: fast.ActorNet
    critics: list[fast.MLP]
    targets: list[fast.MLP]


class _FastUpdates(_DelayedActorUpdates):
    """Mixin: :class:`_DelayedActorUpdates` with the fast update; SAC and TQC differ in ``_fast_target``,
    ``_fast_critic_loss`` and ``_fast_actor_q``."""

    _fast_cache: tuple[tuple[Any, Any, Any], _FastPlan | None] | None = None
    """The modules the plan was built on and the plan."""

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_fast_cache"]

    def _update(self, gradient_steps: int, batch_size: int) -> None:
        plan = self._fast_plan() if self.fast_update else None
        if plan is None:
            self._train_reference(gradient_steps, batch_size)
        else:
            self._train_fast(plan, gradient_steps, batch_size)

    # ---- what a subclass may add to the actor loss (fine-tuning's anchor: finetune.anchored) ----------
    def _fast_actor_loss_term(
        self, obs: th.Tensor, q_pi: th.Tensor, mean: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor] | None:
        """The term of ``_actor_loss_term`` in the fast update: ``(value, its gradient with respect to the actor's
        Gaussian mean)``; None: none."""
        return None

    def _fast_target(
        self,
        next_q: list[th.Tensor],
        ent_coef: th.Tensor,
        next_log_prob: th.Tensor,
        data: ReplayBufferSamples,
        discounts: th.Tensor | float,
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

    def _sampled_batches(self, gradient_steps: int, batch_size: int) -> Iterator[ReplayBufferSamples]:
        """``gradient_steps`` batches: for SB3's buffers (uniform, with replacement) drawn in one ``sample`` call
        of ``batch_size * gradient_steps`` transitions (in chunks of at most ``_SAMPLE_ROWS``) and sliced; from
        any other buffer, or one whose ``per_batch_sampling`` is true (the fine-tuning learner's mix of two, which
        splits each ``sample`` call between its parts), one ``sample(batch_size)`` per step."""
        if not isinstance(self.replay_buffer, ReplayBuffer) or getattr(self.replay_buffer, "per_batch_sampling", False):
            other: Any = self.replay_buffer  # any object with ReplayBuffer.sample's signature
            for _ in range(gradient_steps):
                yield other.sample(batch_size, env=self._vec_normalize_env)
            return
        chunk_steps = max(1, min(gradient_steps, _SAMPLE_ROWS // max(batch_size, 1)))
        done = 0
        while done < gradient_steps:
            steps = min(chunk_steps, gradient_steps - done)
            data = self.replay_buffer.sample(batch_size * steps, env=self._vec_normalize_env)
            for i in range(steps):
                lo, hi = i * batch_size, (i + 1) * batch_size
                # Only the optional ``discounts`` field can be None; mypy cannot tell which unpacked item is which
                yield type(data)(*(None if t is None else t[lo:hi] for t in data))  # type: ignore[arg-type]
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
                caches: list[list[Any]] = [[] for _ in plan.critics]
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
                    grad_action: th.Tensor | None = None
                    for net, c, grad in zip(plan.critics, caches, q_grads, strict=True):
                        g = net.backward(c, grad, param_grads=False, input_columns=action_columns)
                        grad_action = g if grad_action is None else grad_action + g
                    actor_step.zero_grad()
                    plan.actor.backward(actor_cache, cast(th.Tensor, grad_action), ent_coef / batch, grad_mean)
                    actor_step()
                    actor_losses.append(actor_loss)
                    if ent_coef_step is not None:
                        # -(log_alpha * (log_prob + target_entropy)).mean() and its gradient
                        # (SB3 learns log_ent_coef whenever it has an optimizer; target_entropy is a float by then)
                        log_ent_coef = cast(th.Tensor, self.log_ent_coef)
                        target_entropy = cast(float, self.target_entropy)
                        grad = (log_prob + target_entropy).mean().neg().reshape(log_ent_coef.shape)
                        ent_coef_losses.append((log_ent_coef * grad).sum())
                        log_ent_coef.grad = grad
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
