"""The update schedule SAC and TQC share with delayed actor updates, and its reference loop.

Per gradient step: one critic update (and a Polyak update of the target critics every
``target_update_interval`` steps); every ``policy_delay``-th step also one actor update and one
entropy-coefficient update. ``policy_delay=1`` is SB3's SAC/TQC update schedule. The counter that decides when
the actor updates is ``_n_updates`` (saved with the model), so a resumed run keeps the same schedule.

The reference loop (:meth:`_DelayedActorUpdates._train_reference`, ``fast_update=False``) runs step by step on
SB3's modules with autograd. Cheaper than SB3's own loop without changing the maths: the critics' parameters do
not accumulate gradients from the actor loss (they are frozen during its backward pass), and losses are read back
with one ``.item()`` per ``train()`` call instead of several per gradient step. The fast update
(:mod:`a1_common.algos.delayed_fast`) is the same maths without autograd.

``defer_updates``: ``train()`` only records the update it is asked for and :meth:`run_deferred_update` runs it,
during the next env step (:mod:`a1_common.algos.concurrent`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update

if TYPE_CHECKING:
    # What type checkers see as the mixin's base: SB3's SAC and sb3-contrib's TQC both derive from it. At run
    # time the mixin derives from ``object`` and sits before SAC or TQC in the model class's bases.
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm as _OffPolicyBase
else:
    _OffPolicyBase = object


class _DelayedActorUpdates(_OffPolicyBase):
    """Mixin: the update schedule shared by SAC and TQC; the two differ in ``_critic_loss`` and ``_actor_q``."""

    # SAC's and TQC's attributes the update uses (set by their ``_setup_model``). The networks' classes differ
    # between SAC and TQC, hence ``Any``.
    actor: Any
    critic: Any
    critic_target: Any
    log_ent_coef: th.Tensor | None
    """log of the entropy coefficient when it is learned; None when it is fixed (``ent_coef_tensor``)."""
    ent_coef_optimizer: th.optim.Adam | None
    ent_coef_tensor: th.Tensor
    target_entropy: str | float
    """A float once SB3's ``_setup_model`` resolved ``"auto"``."""
    target_update_interval: int
    batch_norm_stats: list[th.Tensor]
    batch_norm_stats_target: list[th.Tensor]

    policy_delay: int
    fast_update: bool = True
    """The fast update where the class has one (:mod:`a1_common.algos.delayed_fast`); False: the reference loop
    (:meth:`_train_reference`). Not saved."""
    defer_updates: bool = False
    """``train()`` only records the update it is asked for; :meth:`run_deferred_update` runs it (during the next
    env step: :mod:`a1_common.algos.concurrent`). Not saved."""
    _deferred_update: tuple[int, int] | None = None
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
        ]

    def _init_policy_delay(self, policy_delay: int, fast_update: bool = True) -> None:
        if int(policy_delay) < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        self.policy_delay = int(policy_delay)
        self.fast_update = bool(fast_update)

    def _critic_loss(self, data: ReplayBufferSamples, ent_coef: th.Tensor, discounts: th.Tensor | float) -> th.Tensor:
        raise NotImplementedError

    def _actor_q(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    # ---- what a subclass may add to the actor loss (fine-tuning's anchor: finetune.anchored) ----------
    def _actor_loss_term(self, obs: th.Tensor, q_pi: th.Tensor) -> th.Tensor | None:
        """An extra term of the actor loss in the reference loop (autograd, on ``self.actor``); None: none."""
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
        """The update of one ``train()`` call (the reference loop; the fast update overrides this)."""
        self._train_reference(gradient_steps, batch_size)

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
        replay_buffer: Any = self.replay_buffer  # SB3's buffer, or any object with its ``sample``
        for step in range(gradient_steps):
            data = replay_buffer.sample(batch_size, env=self._vec_normalize_env)
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
            critic_loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
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


def _mean(values: list[th.Tensor]) -> float:
    return float(th.stack([v.reshape(()) for v in values]).mean().item()) if values else float("nan")
