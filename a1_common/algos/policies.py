"""SAC / TQC policies whose critics put a LayerNorm after every hidden linear layer.

The seed author's Part II preset (SBX ``layer_norm=True``) normalizes the critics only; the actor is
SB3's. Built with SB3's own ``create_mlp(..., post_linear_modules=[nn.LayerNorm])`` so the networks
differ from SB3's only by the LayerNorm modules.
"""

from __future__ import annotations

from typing import Any

from sb3_contrib.tqc.policies import Critic as QuantileCritic
from sb3_contrib.tqc.policies import TQCPolicy
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.sac.policies import SACPolicy
from torch import nn


def _layer_norm_mlp(
    input_dim: int, output_dim: int, net_arch: list[int], activation_fn: type[nn.Module]
) -> nn.Sequential:
    return nn.Sequential(
        *create_mlp(input_dim, output_dim, net_arch, activation_fn, post_linear_modules=[nn.LayerNorm])
    )


def _rebuild(
    critic: nn.Module,
    networks: list[nn.Module] | list[nn.Sequential],
    prefix: str,
    output_dim: int,
    kwargs: dict[str, Any],
) -> None:
    """Replace the critic's freshly built MLPs (same names, same count) by LayerNorm ones."""
    input_dim = kwargs["features_dim"] + get_action_dim(kwargs["action_space"])
    for idx in range(len(networks)):
        net = _layer_norm_mlp(input_dim, output_dim, kwargs["net_arch"], kwargs["activation_fn"])
        critic.add_module(f"{prefix}{idx}", net)  # same attribute name: replaces the plain MLP
        networks[idx] = net


class LayerNormSACPolicy(SACPolicy):
    """``SACPolicy`` with LayerNorm critics (``policy="LayerNormSACPolicy"`` or via the presets)."""

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        critic = ContinuousCritic(**kwargs)
        _rebuild(critic, critic.q_networks, "qf", 1, kwargs)
        return critic.to(self.device)


class LayerNormTQCPolicy(TQCPolicy):
    """sb3-contrib ``TQCPolicy`` with LayerNorm quantile critics."""

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> QuantileCritic:
        kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        critic = QuantileCritic(**kwargs)
        _rebuild(critic, critic.q_networks, "qf", critic.n_quantiles, kwargs)
        return critic.to(self.device)
