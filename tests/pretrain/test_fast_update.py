"""The fast SAC / TQC update (``fast_update=True``, the default) against the step-by-step loop it replaces.

From the same model state and the same batches, one (or a few) fast updates give the same losses, gradients,
parameters and optimizer states as the reference loop (``fast_update=False``) to float tolerance: SAC and
TQC, with and without LayerNorm critics, policy delay 1 and 2, n-step returns, a fixed entropy coefficient,
the fine-tuning anchor, AdamW. Saving and loading a model trained with it works as before. (No learning-curve check
here: a curve long enough to mean something takes minutes on this box.)
"""

from __future__ import annotations

import copy
import io
import zipfile

import numpy as np
import pytest
import torch as th
from sb3_contrib.common.utils import quantile_huber_loss as sb3_quantile_huber_loss
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import configure
from torch.nn import functional as F

from a1_common.algos import DelayedSAC, DelayedTQC, LayerNormSACPolicy, LayerNormTQCPolicy
from a1_common.algos import fast_update as fast
from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

CLASSES = {"sac": DelayedSAC, "tqc": DelayedTQC}
LAYER_NORM_POLICIES = {"sac": LayerNormSACPolicy, "tqc": LayerNormTQCPolicy}
BATCH = 32
LOGGED = ("train/critic_loss", "train/actor_loss", "train/ent_coef_loss", "train/ent_coef")


@pytest.fixture(scope="module")
def env():
    venv = A1MujocoVecEnv(2, seed=0, num_threads=1)
    yield venv
    venv.close()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


def _model(algo, env, layer_norm=False, policy_kwargs=None, **kwargs):
    kwargs.setdefault("learning_rate", 1e-3)
    kwargs.setdefault("ent_coef", "auto_0.1")
    model = CLASSES[algo](
        LAYER_NORM_POLICIES[algo] if layer_norm else "MlpPolicy",
        env,
        buffer_size=512,
        learning_starts=0,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 32], "activation_fn": th.nn.ELU, **(policy_kwargs or {})},
        **kwargs,
    )
    model.set_logger(configure(None, []))
    return model


def _fill(model, n: int = 256) -> None:
    """Random transitions (some terminal) straight into the replay buffer."""
    rng = np.random.default_rng(0)
    num_envs = model.n_envs
    obs_dim = model.observation_space.shape[0]
    act_dim = model.action_space.shape[0]
    for _ in range(n // num_envs):
        model.replay_buffer.add(
            rng.normal(size=(num_envs, obs_dim)).astype(np.float32),
            rng.normal(size=(num_envs, obs_dim)).astype(np.float32),
            rng.uniform(-1, 1, size=(num_envs, act_dim)).astype(np.float32),
            rng.normal(size=num_envs).astype(np.float32),
            rng.random(num_envs) < 0.1,
            [{} for _ in range(num_envs)],
        )


def _pair(algo, env, layer_norm=False, **kwargs):
    """(fast, reference): identical weights, entropy coefficient and replay buffer."""
    new = _model(algo, env, layer_norm, **kwargs)
    ref = _model(algo, env, layer_norm, fast_update=False, **kwargs)
    ref.policy.load_state_dict(new.policy.state_dict())
    if new.log_ent_coef is not None:
        with th.no_grad():
            ref.log_ent_coef.copy_(new.log_ent_coef)
    _fill(new)
    ref.replay_buffer = new.replay_buffer  # sampling reads only numpy's global RNG
    assert new.fast_update and not ref.fast_update
    return new, ref


class _FixedBatches(ReplayBuffer):
    """Hands out the rows of one pre-drawn sample in order, however they are asked for: the reference loop
    (``sample(B)`` per step) and the fast update (``sample(B * steps)`` once) then see the same batches."""

    def __init__(self, data) -> None:  # no ReplayBuffer.__init__: nothing is stored
        self.data, self.next_row = data, 0

    def sample(self, batch_size, env=None):
        lo, self.next_row = self.next_row, self.next_row + batch_size
        return type(self.data)(*(None if t is None else t[lo : self.next_row] for t in self.data))


def _fixed_batches(model, steps: int, seed: int = 7):
    np.random.seed(seed)
    return _FixedBatches(model.replay_buffer.sample(BATCH * steps, env=model._vec_normalize_env))


def _train(model, steps: int, seed: int = 123) -> dict:
    th.manual_seed(seed)
    np.random.seed(seed)
    model.train(gradient_steps=steps, batch_size=BATCH)
    return dict(model.logger.name_to_value)


def _params(module) -> dict[str, th.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _max_diff(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((float((a[k] - b[k]).abs().max()) for k in a), default=0.0)


def _grads(model) -> dict[str, th.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.policy.named_parameters() if p.grad is not None}
    if model.log_ent_coef is not None and model.log_ent_coef.grad is not None:
        grads["log_ent_coef"] = model.log_ent_coef.grad.clone()
    return grads


def _optimizer_states(model) -> dict[str, th.Tensor]:
    out = {}
    for name in ("actor", "critic"):
        state = getattr(model, name).optimizer.state_dict()["state"]
        for idx, entry in state.items():
            for key, value in entry.items():
                out[f"{name}.{idx}.{key}"] = value.clone()
    return out


def _assert_same_update(new, ref, logged_new, logged_ref, tol=2e-5) -> None:
    for key in LOGGED:
        assert (key in logged_new) == (key in logged_ref), key
        if key in logged_new:
            a, b = logged_new[key], logged_ref[key]
            assert abs(a - b) <= tol * max(1.0, abs(b)), f"{key}: {a} vs {b}"
    grads_new, grads_ref = _grads(new), _grads(ref)
    assert grads_new.keys() == grads_ref.keys() and grads_new
    for name, grad in grads_new.items():
        scale = max(1.0, float(grads_ref[name].abs().max()))
        diff = float((grad - grads_ref[name]).abs().max())
        assert diff <= tol * scale, f"gradient of {name} differs by {diff:.3g}"
    for name in ("actor", "critic", "critic_target"):
        diff = _max_diff(_params(getattr(new, name)), _params(getattr(ref, name)))
        assert diff <= tol, f"{name} parameters differ by {diff:.3g}"
    assert _max_diff(_optimizer_states(new), _optimizer_states(ref)) <= tol
    if ref.log_ent_coef is not None:
        assert abs(new.log_ent_coef.item() - ref.log_ent_coef.item()) <= tol
    assert new._n_updates == ref._n_updates


# ---- one update from the same state and batch --------------------------------------------------------


@pytest.mark.parametrize("policy_delay", [1, 2])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("algo", sorted(CLASSES))
def test_one_update_matches_reference(algo, layer_norm, policy_delay, env):
    new, ref = _pair(algo, env, layer_norm, policy_delay=policy_delay)
    assert new._fast_plan() is not None
    # one update with the actor (n_updates 0), and with policy delay 2 one without it (n_updates 1)
    for _ in range(policy_delay):
        _assert_same_update(new, ref, _train(new, 1), _train(ref, 1))


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("algo", sorted(CLASSES))
def test_several_updates_in_one_call_match_reference(algo, layer_norm, env):
    """Three gradient steps in one ``train()`` call (actor at the 1st and 3rd), the same batches for both."""
    new, ref = _pair(algo, env, layer_norm=layer_norm, policy_delay=2)
    batches = _fixed_batches(new, 3)
    new.replay_buffer, ref.replay_buffer = batches, copy.copy(batches)
    _assert_same_update(new, ref, _train(new, 3), _train(ref, 3))
    assert batches.next_row == ref.replay_buffer.next_row == 3 * BATCH


@pytest.mark.parametrize("algo", sorted(CLASSES))
def test_n_step_returns_and_fixed_entropy_coefficient(algo, env):
    new, ref = _pair(algo, env, n_steps=3, ent_coef=0.05, gamma=0.9)
    assert new.log_ent_coef is None
    _assert_same_update(new, ref, _train(new, 1), _train(ref, 1))


def test_adamw_with_weight_decay(env):
    adamw = {"optimizer_class": th.optim.AdamW, "optimizer_kwargs": {"weight_decay": 0.1}}
    new, ref = _pair("sac", env, policy_kwargs=adamw)
    assert type(new.critic.optimizer) is th.optim.AdamW
    for _ in range(3):  # the first step creates the optimizer state, the next ones use the fused kernel
        _assert_same_update(new, ref, _train(new, 1), _train(ref, 1))


# ---- where the fast update applies -------------------------------------------------------------------


def test_reference_loop_when_asked_or_with_gsde(env, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the fast update ran")

    ref = _model("sac", env, fast_update=False)
    _fill(ref)
    monkeypatch.setattr(DelayedSAC, "_train_fast", fail)
    ref.train(gradient_steps=2, batch_size=BATCH)
    sde = _model("sac", env, use_sde=True)
    _fill(sde)
    assert sde._fast_plan() is None
    sde.train(gradient_steps=2, batch_size=BATCH)
    assert sde._n_updates == ref._n_updates == 2


def test_no_gradient_steps(env):
    new, ref = _pair("tqc", env)
    logged_new, logged_ref = _train(new, 0), _train(ref, 0)
    assert new._n_updates == 0 and np.isnan(logged_new["train/critic_loss"])
    assert logged_new.keys() == logged_ref.keys()


def test_other_buffers_are_sampled_once_per_step(env):
    """A buffer that is not SB3's (the fine-tuning learner's mix of two) gets ``sample(batch_size)`` per step."""
    model = _model("sac", env)
    _fill(model)
    calls = []

    class Wrapper:
        def __init__(self, inner):
            self.inner = inner

        def sample(self, batch_size, env=None):
            calls.append(batch_size)
            return self.inner.sample(batch_size, env=env)

    model.replay_buffer = Wrapper(model.replay_buffer)
    model.train(gradient_steps=3, batch_size=BATCH)
    assert calls == [BATCH] * 3


def test_sb3_buffer_is_sampled_once_per_call(env, monkeypatch):
    model = _model("tqc", env)
    _fill(model)
    calls = []
    sample = model.replay_buffer.sample

    def counting(batch_size, env=None):
        calls.append(batch_size)
        return sample(batch_size, env=env)

    monkeypatch.setattr(model.replay_buffer, "sample", counting)
    model.train(gradient_steps=5, batch_size=BATCH)
    assert calls == [5 * BATCH]
    monkeypatch.setattr("a1_common.algos.delayed_fast._SAMPLE_ROWS", 2 * BATCH)  # in chunks of at most 2 steps
    calls.clear()
    model.train(gradient_steps=5, batch_size=BATCH)
    assert calls == [2 * BATCH, 2 * BATCH, BATCH]


# ---- saving and loading ------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", sorted(CLASSES))
def test_save_load_round_trip_after_fast_training(algo, env, tmp_path):
    model = _model(algo, env, layer_norm=True, policy_delay=2)
    _fill(model)
    for _ in range(3):
        _train(model, 2)
    fresh = _model(algo, env, layer_norm=True, policy_delay=2, fast_update=False)
    assert model.policy.state_dict().keys() == fresh.policy.state_dict().keys()
    assert model._fast_cache is not None
    path = tmp_path / "model.zip"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        data = archive.read("data").decode()
        policy = th.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    for name in ("fast_update", "_fast_cache"):
        assert f'"{name}"' not in data, name
    assert policy.keys() == fresh.policy.state_dict().keys()
    # the optimizers' saved settings are SB3's (nothing switched on for the fast kernel)
    assert model.critic.optimizer.state_dict()["param_groups"] == fresh.critic.optimizer.state_dict()["param_groups"]

    loaded = CLASSES[algo].load(path, env=env, device="cpu")
    loaded.set_logger(configure(None, []))
    assert loaded.fast_update and loaded.policy_delay == 2 and loaded._n_updates == model._n_updates
    assert _max_diff(_params(loaded.policy), _params(model.policy)) == 0.0
    assert _max_diff(_optimizer_states(loaded), _optimizer_states(model)) == 0.0
    # the same next update from the saved state (same buffer, same seeds)
    loaded.replay_buffer = model.replay_buffer
    assert loaded.log_ent_coef.item() == model.log_ent_coef.item()
    _assert_same_update(loaded, model, _train(loaded, 2), _train(model, 2), tol=0.0)


# ---- the pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 300])
def test_quantile_huber_matches_sb3_contrib(chunk, monkeypatch):
    if chunk is not None:
        monkeypatch.setattr(fast, "_CHUNK_ELEMENTS", chunk)  # several blocks of rows
    gen = th.Generator().manual_seed(0)
    current = (2 * th.randn(16, 3, 5, generator=gen)).requires_grad_(True)
    target = 2 * th.randn(16, 1, 13, generator=gen)
    expected = sb3_quantile_huber_loss(current, target, sum_over_quantiles=False)
    (expected_grad,) = th.autograd.grad(expected, current)
    loss, grad = fast.quantile_huber(current.detach(), target)
    assert abs(loss.item() - expected.item()) <= 1e-6 * abs(expected.item())
    assert float((grad - expected_grad).abs().max()) <= 1e-7


def test_elu_matches_torch():
    x = 4 * th.randn(1000)
    assert float((fast.elu(x) - F.elu(x)).abs().max()) <= 1e-6


@pytest.mark.parametrize("activation", [th.nn.ELU, th.nn.ReLU, th.nn.Tanh, th.nn.SiLU])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_mlp_backward_matches_autograd(activation, layer_norm):
    th.manual_seed(0)
    layers = [th.nn.Linear(9, 16), *([th.nn.LayerNorm(16)] if layer_norm else []), activation(), th.nn.Linear(16, 3)]
    net = th.nn.Sequential(*layers)
    for p in net.parameters():  # LayerNorm's affine parameters away from (1, 0)
        th.nn.init.normal_(p)
    x, grad_out = th.randn(32, 9, requires_grad=True), th.randn(32, 3)
    net(x).backward(grad_out)
    expected = {n: p.grad.clone() for n, p in net.named_parameters()}
    expected_input = x.grad[:, 4:].clone()
    net.zero_grad(set_to_none=True)
    mlp = fast.MLP(net)
    with th.no_grad():
        cache: list = []
        out = mlp.forward(x.detach(), cache)
        assert float((out - net(x)).abs().max()) <= 1e-5
        grad_input = mlp.backward(cache, grad_out, input_columns=slice(4, None))
    for name, p in net.named_parameters():
        assert float((p.grad - expected[name]).abs().max()) <= 1e-5 * max(1.0, float(expected[name].abs().max()))
    assert float((grad_input - expected_input).abs().max()) <= 1e-5


def test_unsupported_networks_run_the_reference_loop(env):
    model = _model("sac", env, policy_kwargs={"activation_fn": th.nn.LeakyReLU})
    assert model._fast_plan() is None
    _fill(model)
    model.train(gradient_steps=2, batch_size=BATCH)
    assert model._n_updates == 2


def test_actor_sample_matches_sb3(env):
    model = _model("sac", env)
    obs = th.randn(64, model.observation_space.shape[0])
    th.manual_seed(5)
    expected_action, expected_log_prob = model.actor.action_log_prob(obs)
    th.manual_seed(5)
    with th.no_grad():
        action, log_prob = model._fast_plan().actor.sample(obs)
    assert float((action - expected_action.detach()).abs().max()) <= 1e-6
    assert float((log_prob.reshape(-1) - expected_log_prob.detach()).abs().max()) <= 1e-4


@pytest.mark.parametrize("optimizer_class", [th.optim.Adam, th.optim.AdamW])
def test_adam_step_matches_torch(optimizer_class):
    gen = th.Generator().manual_seed(0)
    params = [th.randn(7, 3, generator=gen).requires_grad_(True), th.randn(3, generator=gen).requires_grad_(True)]
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    ours = optimizer_class(params, lr=1e-2, weight_decay=0.05)
    theirs = optimizer_class(twins, lr=1e-2, weight_decay=0.05)
    step = fast.AdamStep(ours)
    assert step.enabled
    for _ in range(4):
        grads = [th.randn(p.shape, generator=gen) for p in params]
        step.zero_grad()
        theirs.zero_grad()
        for p, q, g in zip(params, twins, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        step()
        theirs.step()
    for p, q in zip(params, twins, strict=True):
        assert float((p - q).detach().abs().max()) <= 1e-6
    assert ours.state_dict()["param_groups"] == theirs.state_dict()["param_groups"]
    for a, b in zip(ours.state_dict()["state"].values(), theirs.state_dict()["state"].values(), strict=True):
        for key in a:
            assert float((a[key] - b[key]).abs().max()) <= 1e-6, key
