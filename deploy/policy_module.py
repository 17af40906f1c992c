"""The torch module that becomes the ONNX graph: raw observation in, raw action and Gaussian parameters out.

``ExportablePolicy`` wraps a trained SB3 actor with everything SB3 and the environment do around it
folded in, so the robot needs nothing but the graph and the contract:

1. observation normalization, exactly ``ObsNorm.normalize``: ``clip((obs - mean) / sqrt(var + eps), +-clip)``;
2. the actor: SAC/TQC ``Actor`` (``features_extractor -> latent_pi -> mu, log_std``, log std clamped to
   ``[LOG_STD_MIN, LOG_STD_MAX]`` as SB3 does) or PPO's ``ActorCriticPolicy`` (``pi_features_extractor ->
   mlp_extractor.policy_net -> action_net``, a state-independent ``log_std``);
3. squashing to the normalized action: ``tanh(mean)`` (SAC/TQC) or ``clip(mean, -1, 1)`` (PPO: SB3 clips
   its unsquashed Gaussian to the action space);
4. the contract's rescale to raw units, ``raw = low + (a + 1) / 2 * (high - low)``.

Outputs: ``action`` (deterministic raw action), ``mean`` (pre-squash mean, normalized units) and
``log_std`` (same shape), from which a robot-side actor samples exploration actions with numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from torch import nn

from a1_common.bundle import ObsNorm
from a1_contract import TaskContract


class ExportError(RuntimeError):
    """The policy cannot be exported, or the exported graph does not reproduce the trained policy."""


class ExportablePolicy(nn.Module):
    """``obs (N, obs_dim) raw float32 -> (action raw, mean, log_std)``, each ``(N, num_joints)`` float32."""

    def __init__(self, sb3_policy: Any, algo: str, obs_norm: ObsNorm, contract: TaskContract) -> None:
        super().__init__()
        self.algo = algo
        if algo in ("sac", "tqc"):
            actor = sb3_policy.actor
            if actor.use_sde:
                raise ExportError(f"{algo} actor uses gSDE (use_sde=True); only plain Gaussian actors export")
            self.features, self.latent, self.mu, self.log_std_net = (
                actor.features_extractor,
                actor.latent_pi,
                actor.mu,
                actor.log_std,
            )
            self.log_std_range = _sac_log_std_range(algo)
            self.log_std_param = None
        elif algo == "ppo":
            if sb3_policy.use_sde:
                raise ExportError("ppo policy uses gSDE (use_sde=True); only plain Gaussian actors export")
            self.features = sb3_policy.pi_features_extractor
            self.latent = sb3_policy.mlp_extractor.policy_net
            self.mu = sb3_policy.action_net
            self.log_std_net = None
            self.log_std_param = sb3_policy.log_std
            self.log_std_range = None
        else:
            raise ExportError(f"unknown algo {algo!r}; expected sac, tqc or ppo")
        num_joints = contract.num_joints
        if self.mu.out_features != num_joints:
            raise ExportError(f"actor outputs {self.mu.out_features} actions, the contract has {num_joints} joints")
        if len(obs_norm.mean) != contract.obs_dim:
            raise ExportError(f"obs normalization has {len(obs_norm.mean)} entries, obs_dim is {contract.obs_dim}")
        std = np.sqrt(np.asarray(obs_norm.var, np.float64) + obs_norm.epsilon)
        low = np.asarray(contract.action_bounds.low, np.float64)
        high = np.asarray(contract.action_bounds.high, np.float64)
        # float64, as ObsNorm.normalize computes it: the normalized observation is then bit-identical to
        # what SB3's predict was fed (float32 here would differ by ~1 ulp of the clip, 1e-6).
        self.register_buffer("obs_mean", th.as_tensor(np.asarray(obs_norm.mean), dtype=th.float64))
        self.register_buffer("obs_std", th.as_tensor(std, dtype=th.float64))
        self.register_buffer("action_low", th.as_tensor(low, dtype=th.float32))
        self.register_buffer("action_half_range", th.as_tensor(0.5 * (high - low), dtype=th.float32))
        self.clip_obs = float(obs_norm.clip_obs)
        self.squash = "tanh" if algo in ("sac", "tqc") else "clip"
        self.eval()

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        normalized = (obs.to(th.float64) - self.obs_mean) / self.obs_std
        if np.isfinite(self.clip_obs):
            normalized = th.clamp(normalized, -self.clip_obs, self.clip_obs)
        latent = self.latent(self.features(normalized.to(th.float32)))
        mean = self.mu(latent)
        if self.log_std_net is not None:
            low, high = self.log_std_range
            log_std = th.clamp(self.log_std_net(latent), low, high)
        else:
            log_std = self.log_std_param.expand_as(mean)
        squashed = th.tanh(mean) if self.squash == "tanh" else th.clamp(mean, -1.0, 1.0)
        action = self.action_low + (squashed + 1.0) * self.action_half_range
        return action, mean, log_std


def _sac_log_std_range(algo: str) -> tuple[float, float]:
    if algo == "tqc":
        from sb3_contrib.tqc.policies import LOG_STD_MAX, LOG_STD_MIN
    else:
        from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN
    return float(LOG_STD_MIN), float(LOG_STD_MAX)
