"""The pieces of the fast SAC / TQC update (:mod:`a1_common.algos.delayed_fast`): SB3's maths, far fewer ops.

The update runs without autograd. Every network is evaluated through functional ops on SB3's own modules
(which stay the source of truth: state dict, saving, loading, the optimizers) and differentiated by hand with
the same backward kernels autograd would call (``mm``, ``native_layer_norm_backward``, ``tanh_backward``...);
what that saves is autograd's graph bookkeeping and engine, which for the networks of a CPU run cost as much
as the matmuls.

* :class:`MLP`: an SB3 MLP (``nn.Sequential`` of Linear / LayerNorm / ELU, ReLU, Tanh, SiLU) with a forward that
  keeps what the backward needs and a backward that writes the parameters' ``.grad`` (and/or returns the
  gradient of the input).
* :class:`ActorNet`: SB3's SAC / TQC actor (squashed Gaussian, no gSDE): sample (same noise draw as
  ``Normal.rsample``) and log-probability (SB3's formula), and their backward.
* :func:`elu`: ELU as ``max(x, exp(min(x, 0)) - 1)``, gradient ``exp(min(x, 0))`` (torch's CPU ELU kernel,
  ``expm1``, is several times slower than ``exp``); differs from ``F.elu`` by rounding only.
* :func:`quantile_huber`: sb3-contrib's TQC loss and its gradient, with fewer passes over the (batch,
  critics, quantiles, targets) tensor, a block of rows at a time.
* :class:`AdamStep`: Adam / AdamW steps on CPU straight into torch's fused kernel, on the optimizer's own state.
* :func:`polyak`: the target update with ``torch._foreach`` ops, SB3's formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast, overload

import torch as th
from torch import nn

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
TANH_EPS = 1e-6
"""SB3's ``SquashedDiagGaussianDistribution`` epsilon in ``log(1 - tanh(u)^2 + eps)``."""
_aten = th.ops.aten


# ---- activations: forward (output, what the backward keeps) and backward (grad, kept) -> grad ----------


def elu(x: th.Tensor) -> th.Tensor:
    """``F.elu(x)`` (alpha 1) as ``max(x, exp(min(x, 0)) - 1)``."""
    return _elu_forward(x)[0]


def _elu_forward(x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    e = th.clamp_max(x, 0.0).exp_()
    return th.maximum(e - 1.0, x), e


def _elu_backward(grad: th.Tensor, e: th.Tensor) -> th.Tensor:
    return grad * e  # torch's ELU gradient: exp(x) for x <= 0, 1 above


def _relu_forward(x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    y = th.relu(x)
    return y, y


def _tanh_forward(x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    y = th.tanh(x)
    return y, y


def _silu_forward(x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    return th.nn.functional.silu(x), x


_Activation = tuple[Callable[..., Any], Callable[..., Any]]
"""An activation's (forward, backward) functions."""

ACTIVATIONS: dict[type[nn.Module], _Activation] = {
    nn.ELU: (_elu_forward, _elu_backward),
    nn.ReLU: (_relu_forward, lambda grad, y: _aten.threshold_backward(grad, y, 0)),
    nn.Tanh: (_tanh_forward, lambda grad, y: _aten.tanh_backward(grad, y)),
    nn.SiLU: (_silu_forward, lambda grad, x: _aten.silu_backward(grad, x)),
}


def _activation(module: nn.Module) -> _Activation | None:
    if type(module) is nn.ELU and (module.alpha != 1.0 or module.inplace):
        return None
    if type(module) is nn.ReLU and module.inplace:
        return None
    return ACTIVATIONS.get(type(module))


class MLP:
    """An ``nn.Sequential`` of Linear (with bias), LayerNorm (affine, 1-d) and ELU / ReLU / Tanh / SiLU layers,
    evaluated on its modules' current parameters and differentiated by hand (same kernels as autograd)."""

    def __init__(self, net: nn.Module) -> None:
        if not isinstance(net, nn.Sequential) or len(net) == 0:
            raise ValueError("not an nn.Sequential")
        self.layers: list[tuple[str, Any]] = []
        for module in net:
            if type(module) is nn.Linear and module.bias is not None:
                self.layers.append(("linear", module))
            elif (
                type(module) is nn.LayerNorm
                and module.elementwise_affine
                and module.bias is not None
                and len(module.normalized_shape) == 1
            ):
                self.layers.append(("layer_norm", module))
            elif (fns := _activation(module)) is not None:
                self.layers.append(("act", fns))
            else:
                raise ValueError(f"unsupported layer {module}")
        if self.layers[0][0] != "linear":
            raise ValueError("the MLP must start with a Linear layer")
        self.parameters = [p for kind, m in self.layers if kind != "act" for p in (m.weight, m.bias)]

    def forward(self, x: th.Tensor, cache: list[Any] | None = None) -> th.Tensor:
        """The network's output; with ``cache`` (a list, filled here), what :meth:`backward` needs."""
        for kind, item in self.layers:
            if kind == "linear":
                if cache is not None:
                    cache.append(x)
                x = th.addmm(item.bias, x, item.weight.t())
            elif kind == "layer_norm":
                out, mean, rstd = th.native_layer_norm(x, item.normalized_shape, item.weight, item.bias, item.eps)
                if cache is not None:
                    cache.append((x, mean, rstd))
                x = out
            else:
                x, kept = item[0](x)
                if cache is not None:
                    cache.append(kept)
        return x

    @overload
    def backward(
        self, cache: list[Any], grad: th.Tensor, param_grads: bool = ..., input_columns: None = None
    ) -> None: ...

    @overload
    def backward(self, cache: list[Any], grad: th.Tensor, param_grads: bool, input_columns: slice) -> th.Tensor: ...

    @overload
    def backward(
        self, cache: list[Any], grad: th.Tensor, param_grads: bool = ..., *, input_columns: slice
    ) -> th.Tensor: ...

    def backward(
        self, cache: list[Any], grad: th.Tensor, param_grads: bool = True, input_columns: slice | None = None
    ) -> th.Tensor | None:
        """Backpropagate ``grad`` (of the output) through the cached forward pass. ``param_grads``: set the
        parameters' ``.grad`` (added to any already there). ``input_columns``: return the gradient of those
        columns of the input (None: no input gradient)."""
        last = len(self.layers) - 1
        for idx in range(last, -1, -1):
            kind, item = self.layers[idx]
            kept = cache[idx]
            if kind == "linear":
                if param_grads:
                    _accumulate(item.weight, grad.t().mm(kept))
                    _accumulate(item.bias, grad.sum(dim=0))
                if idx == 0:
                    if input_columns is None:
                        return None
                    return grad.mm(item.weight[:, input_columns])
                grad = grad.mm(item.weight)
            elif kind == "layer_norm":
                x, mean, rstd = kept
                grad_input, grad_weight, grad_bias = _aten.native_layer_norm_backward(
                    grad, x, item.normalized_shape, mean, rstd, item.weight, item.bias, [True, param_grads, param_grads]
                )
                if param_grads:
                    _accumulate(item.weight, grad_weight)
                    _accumulate(item.bias, grad_bias)
                grad = grad_input
            else:
                grad = item[1](grad, kept)
        return None


def _accumulate(param: th.Tensor, grad: th.Tensor) -> None:
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)


class ActorNet:
    """SB3's SAC / sb3-contrib TQC actor without gSDE (``latent_pi`` MLP, ``mu`` and ``log_std`` Linear layers,
    squashed diagonal Gaussian), evaluated and differentiated by hand."""

    def __init__(self, actor: nn.Module) -> None:
        if getattr(actor, "use_sde", True):
            raise ValueError("gSDE actor")
        mu, log_std = getattr(actor, "mu", None), getattr(actor, "log_std", None)
        if type(mu) is not nn.Linear or type(log_std) is not nn.Linear:
            raise ValueError("unsupported actor heads")
        latent = cast(nn.Sequential, actor.latent_pi)
        self.latent = MLP(latent) if len(latent) > 0 else None
        self.mu, self.log_std = mu, log_std
        self.actor = actor

    def sample(self, obs: th.Tensor, cache: dict[str, Any] | None = None) -> tuple[th.Tensor, th.Tensor]:
        """``actor.action_log_prob(obs)``: the same noise draw (``Normal.rsample``'s), SB3's log-probability
        (Gaussian log-density, minus its ``log(1 - tanh(u)^2 + 1e-6)`` correction); log_prob is (batch, 1)."""
        from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN

        latent_cache: list[Any] | None = [] if cache is not None else None
        latent = self.latent.forward(obs, latent_cache) if self.latent is not None else obs
        mean = th.addmm(self.mu.bias, latent, self.mu.weight.t())
        raw_log_std = th.addmm(self.log_std.bias, latent, self.log_std.weight.t())
        log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        noise = th.empty_like(mean).normal_()  # torch.distributions.Normal.rsample's draw
        action = th.tanh(th.addcmul(mean, noise, std))
        # Normal(mean, std).log_prob(mean + noise * std) = -noise^2 / 2 - log std - log sqrt(2 pi)
        log_prob = (noise.square().mul_(-0.5) - log_std).sum(dim=1) - mean.shape[1] * _HALF_LOG_2PI
        log_prob = log_prob - th.log(1 - action.square() + TANH_EPS).sum(dim=1)
        if cache is not None:
            clamped = (raw_log_std >= LOG_STD_MIN) & (raw_log_std <= LOG_STD_MAX)
            cache.update(latent_cache=latent_cache, latent=latent, mean=mean, clamped=clamped)
            cache.update(std=std, noise=noise, action=action)
        return action, log_prob.reshape(-1, 1)

    def backward(
        self,
        cache: dict[str, Any],
        grad_action: th.Tensor,
        grad_log_prob: th.Tensor,
        grad_mean: th.Tensor | None = None,
    ) -> None:
        """Set the actor parameters' gradients given the loss's gradient with respect to the sampled action
        (through everything but the log-probability), to the log-probability (per row, or one for all) and,
        optionally, to the Gaussian mean directly."""
        action = cache["action"]
        # d log_prob / d action = 2 a / (1 - a^2 + eps)
        grad_action = grad_action + grad_log_prob * 2 * action / (1 - action.square() + TANH_EPS)
        grad_pre_tanh = _aten.tanh_backward(grad_action, action)
        grad_mean_total = grad_pre_tanh if grad_mean is None else grad_pre_tanh + grad_mean
        # u = mean + noise * exp(log_std): d/d log_std = du * noise * std; log_prob: -1 per log_std
        grad_log_std = grad_pre_tanh * cache["noise"] * cache["std"] - grad_log_prob
        grad_log_std = grad_log_std * cache["clamped"]
        latent = cache["latent"]
        _accumulate(self.mu.weight, grad_mean_total.t().mm(latent))
        _accumulate(self.mu.bias, grad_mean_total.sum(dim=0))
        _accumulate(self.log_std.weight, grad_log_std.t().mm(latent))
        _accumulate(self.log_std.bias, grad_log_std.sum(dim=0))
        if self.latent is not None:
            grad_latent = grad_mean_total.mm(self.mu.weight) + grad_log_std.mm(self.log_std.weight)
            self.latent.backward(cache["latent_cache"], grad_latent)


def uses_flat_features(*policies: nn.Module) -> bool:
    """Whether every policy's features extractor is SB3's parameter-free ``FlattenExtractor`` (the features of
    flat float32 observations are the observations themselves)."""
    from stable_baselines3.common.torch_layers import FlattenExtractor

    return all(type(policy.features_extractor) is FlattenExtractor for policy in policies)


# ---- TQC's loss ---------------------------------------------------------------------------------------

_CHUNK_ELEMENTS = 1 << 17
"""Quantile loss: rows of the batch per pass so that its (rows, critics, quantiles, targets) temporaries stay in
the CPU's L2 cache (0.5 MB each)."""


def quantile_huber(current: th.Tensor, target: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """sb3-contrib's ``quantile_huber_loss(current (B, n, q), target (B, 1, t), sum_over_quantiles=False)`` and
    its gradient with respect to ``current``.

    With ``d = target - current``, ``c = clamp(d, -1, 1)`` and the weight ``w = tau`` (``d >= 0``) or
    ``1 - tau`` (``d < 0``): huber(d) = c (d - c / 2), the loss is ``mean(w huber(d))`` and its gradient is
    ``-sum_t(w c) / count``. Computed a block of batch rows at a time (on CPU).
    """
    current, target = current.contiguous(), target.contiguous()
    batch, n_critics, n_quantiles = current.shape
    n_targets = target.shape[-1]
    tau = (th.arange(n_quantiles, device=current.device, dtype=current.dtype) + 0.5) / n_quantiles
    tau = tau.view(1, 1, -1, 1)
    neg_weight = 1.0 - 2.0 * tau
    rows = max(1, _CHUNK_ELEMENTS // (n_critics * n_quantiles * n_targets))
    if current.device.type != "cpu":
        rows = batch
    weighted_sum = th.empty_like(current)
    total = current.new_zeros(())
    for lo in range(0, batch, rows):
        delta = target[lo : lo + rows].unsqueeze(-2) - current[lo : lo + rows].unsqueeze(-1)  # (b, n, q, t)
        clipped = delta.clamp(-1.0, 1.0)
        delta.sub_(clipped, alpha=0.5)  # d - c / 2: huber(d) = c (d - c / 2)
        weighted = clipped * tau  # w c = tau max(c, 0) + (1 - tau) min(c, 0) = tau c + (1 - 2 tau) min(c, 0)
        weighted.addcmul_(clipped.clamp_max_(0.0), neg_weight)
        total += th.dot(weighted.reshape(-1), delta.reshape(-1))
        th.sum(weighted, dim=-1, out=weighted_sum[lo : lo + rows])
    count = batch * n_critics * n_quantiles * n_targets
    return total / count, weighted_sum.mul_(-1.0 / count)


# ---- optimizer and target update ----------------------------------------------------------------------


class AdamStep:
    """``optimizer.step()`` for torch's Adam / AdamW on CPU float parameters, straight into torch's fused kernel.

    Same kernel as ``Adam(..., fused=True)`` on the optimizer's own state tensors (``step``, ``exp_avg``,
    ``exp_avg_sq``), so ``optimizer.state_dict()`` and saving are as before; it skips the Python work of
    ``Optimizer.step`` (hooks, state checks, grouping), which dominates for small networks. Anything else
    (another optimizer, CUDA, a parameter without state or gradient yet, tensor hyperparameters) calls
    ``optimizer.step()``.
    """

    def __init__(self, optimizer: th.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.enabled = _fusable(optimizer)
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        """``optimizer.zero_grad()`` (set_to_none), without its profiler scope."""
        for p in self.params:
            p.grad = None

    def __call__(self) -> None:
        if not self.enabled:
            self.optimizer.step()
            return
        calls = []
        for group in self.optimizer.param_groups:
            params = group["params"]
            grads = [p.grad for p in params]
            states: list[Any] = [self.optimizer.state.get(p) for p in params]
            if any(g is None for g in grads) or any(not st for st in states) or isinstance(group["lr"], th.Tensor):
                self.optimizer.step()  # first step (state created here) or an unusual case
                return
            calls.append((group, params, grads, states))
        for group, params, grads, states in calls:
            beta1, beta2 = group["betas"]
            decoupled = group.get("decoupled_weight_decay", isinstance(self.optimizer, th.optim.AdamW))
            steps = [st["step"] for st in states]
            th._foreach_add_(steps, 1)
            kernel = th._fused_adamw_ if decoupled else th._fused_adam_
            kernel(
                params,
                grads,
                [st["exp_avg"] for st in states],
                [st["exp_avg_sq"] for st in states],
                [st["max_exp_avg_sq"] for st in states] if group["amsgrad"] else [],
                steps,
                amsgrad=group["amsgrad"],
                lr=group["lr"],
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=None,
            )


def _fusable(optimizer: th.optim.Optimizer) -> bool:
    if type(optimizer) not in (th.optim.Adam, th.optim.AdamW) or not hasattr(th, "_fused_adam_"):
        return False
    for group in optimizer.param_groups:
        if group.get("differentiable") or group.get("capturable"):
            return False
        if isinstance(group["betas"][0], th.Tensor) or isinstance(group["betas"][1], th.Tensor):
            return False
        for p in group["params"]:
            if p.device.type != "cpu" or p.dtype not in (th.float32, th.float64) or p.is_sparse or p.is_complex():
                return False
    return True


def polyak(params: list[th.Tensor], targets: list[th.Tensor], tau: float) -> None:
    """SB3's ``polyak_update``: ``target = (1 - tau) target + tau param``, as two foreach ops."""
    if not params:
        return
    with th.no_grad():
        th._foreach_mul_(targets, 1.0 - tau)
        th._foreach_add_(targets, params, alpha=tau)
