"""Fine-tuning as an SB3 extension: SAC/TQC whose actor is anchored to an earlier actor, and a critic-only update.

:class:`AnchoredSAC` / :class:`AnchoredTQC` are :class:`~a1_common.algos.DelayedSAC` / ``DelayedTQC`` (same update,
fast or reference) with one more actor-loss term once :meth:`~_Anchored.anchor_to` was called: TD3+BC's scaling,
``anchor_weight * mean|Q| * mean_batch(sum_j (a_j - anchor_j)^2)`` on the deterministic actions in [-1, 1], the anchor
a frozen copy of the pretrained actor. Plain SAC continued from a pretrained actor with fresh data first forgets
what it learned in simulation; the anchor keeps it near while the critics adapt. The anchor is not saved with the
model (a resumed learner anchors to the bundle's actor again). :meth:`~_Anchored.train_critics_only` is the
learner's warm-up: gradient steps whose actor and entropy-coefficient changes are undone.
"""

from __future__ import annotations

import copy
from typing import Any

import torch as th

from a1_common.algos import DelayedSAC, DelayedTQC

__all__ = ["ANCHORED_CLASSES", "AnchoredSAC", "AnchoredTQC"]


class _Anchored:
    """Mixin over ``DelayedSAC``/``DelayedTQC``; see the module docs."""

    actor_anchor: Any = None
    """A frozen copy of an earlier actor the actor is pulled towards (None: plain SAC/TQC)."""
    anchor_weight: float = 0.0
    """Weight of the anchor term relative to the batch's mean |Q|."""

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor_anchor", "anchor_weight"]

    def anchor_to(self, actor: th.nn.Module, weight: float) -> None:
        """Pull the actor towards a frozen copy of ``actor`` with ``weight`` (0: no anchor term)."""
        self.actor_anchor = copy.deepcopy(actor).requires_grad_(False).eval()
        self.anchor_weight = float(weight)

    @property
    def anchored(self) -> bool:
        return self.actor_anchor is not None and self.anchor_weight > 0

    def _actor_loss_term(self, obs: th.Tensor, q_pi: th.Tensor) -> th.Tensor | None:
        if not self.anchored:
            return None
        with th.no_grad():
            anchor = self.actor_anchor(obs, deterministic=True)
        distance = (self.actor(obs, deterministic=True) - anchor).pow(2).sum(dim=1).mean()
        self._extra_logs.setdefault("train/anchor_distance", []).append(distance.detach())
        return self.anchor_weight * q_pi.abs().mean().detach() * distance

    def _fast_actor_loss_term(
        self, obs: th.Tensor, q_pi: th.Tensor, mean: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor] | None:
        if not self.anchored:
            return None
        anchor = self.actor_anchor(obs, deterministic=True)
        deterministic = th.tanh(mean)  # the actor's deterministic action
        diff = deterministic - anchor
        distance = diff.square().sum(dim=1).mean()
        self._extra_logs.setdefault("train/anchor_distance", []).append(distance)
        scale = self.anchor_weight * q_pi.abs().mean()
        grad_mean = th.ops.aten.tanh_backward(diff * (2 * scale / obs.shape[0]), deterministic)
        return scale * distance, grad_mean

    def train_critics_only(self, gradient_steps: int, batch_size: int) -> None:
        """``gradient_steps`` updates of which only the critics' (and their targets') changes are kept."""
        keep = [self.actor.state_dict(), self.actor.optimizer.state_dict()]
        if self.ent_coef_optimizer is not None:
            keep += [self.log_ent_coef.detach().clone(), self.ent_coef_optimizer.state_dict()]
        keep = copy.deepcopy(keep)
        self.train(gradient_steps=gradient_steps, batch_size=batch_size)
        self.actor.load_state_dict(keep[0])
        self.actor.optimizer.load_state_dict(keep[1])
        if self.ent_coef_optimizer is not None:
            with th.no_grad():
                self.log_ent_coef.copy_(keep[2])
            self.ent_coef_optimizer.load_state_dict(keep[3])


class AnchoredSAC(_Anchored, DelayedSAC):
    pass


class AnchoredTQC(_Anchored, DelayedTQC):
    pass


ANCHORED_CLASSES: dict[str, type[AnchoredSAC] | type[AnchoredTQC]] = {"sac": AnchoredSAC, "tqc": AnchoredTQC}
"""The fine-tuning learner's model class per bundle ``algo`` (off-policy only)."""
