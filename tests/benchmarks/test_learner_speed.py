"""The learner benchmark runs and reports its JSON; DelayedSAC/DelayedTQC do SB3's maths at policy_delay=1."""

from __future__ import annotations

import json
import math
import os
import sys
import zlib

import numpy as np
import pytest
import torch as th
from sb3_contrib import TQC
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from pretrain.algos import DelayedSAC, DelayedTQC
from pretrain.sim.mujoco_vec_env import A1MujocoVecEnv

BENCH_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH_DIR))
import learner_speed  # noqa: E402

PAIRS = {"sac": (DelayedSAC, SAC), "tqc": (DelayedTQC, TQC)}
BATCH = 32


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


def _model(cls, env, **kwargs):
    model = cls(
        "MlpPolicy",
        env,
        learning_rate=1e-3,
        buffer_size=512,
        learning_starts=0,
        ent_coef="auto_0.1",
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32, 32]},
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


def _same_start(algo, env, policy_delay: int = 1):
    """(ours, plain) with identical weights, entropy coefficient and replay buffer."""
    ours_cls, plain_cls = PAIRS[algo]
    ours = _model(ours_cls, env, policy_delay=policy_delay)
    plain = _model(plain_cls, env)
    plain.policy.load_state_dict(ours.policy.state_dict())
    with th.no_grad():
        plain.log_ent_coef.copy_(ours.log_ent_coef)
    _fill(ours)
    plain.replay_buffer = ours.replay_buffer  # sampling reads only numpy's global RNG
    return ours, plain


def _params(module) -> dict[str, th.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _max_diff(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _train(model, steps: int, seed: int = 123) -> None:
    th.manual_seed(seed)
    np.random.seed(seed)
    model.train(gradient_steps=steps, batch_size=BATCH)


def _assert_same(ours, plain) -> None:
    for name in ("critic", "critic_target", "actor"):
        diff = _max_diff(_params(getattr(ours, name)), _params(getattr(plain, name)))
        assert diff <= 1e-6, f"{name} differs from SB3 by {diff:.3g}"
    assert abs(ours.log_ent_coef.item() - plain.log_ent_coef.item()) <= 1e-6


# ---- the benchmark itself --------------------------------------------------------------------------


def test_quick_run_prints_json(capsys):
    result = learner_speed.main(["--quick"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    parsed = json.loads(last)
    assert parsed == json.loads(json.dumps(result))
    assert parsed["metric"] == "grad_steps_per_s"
    keys = ["value", "baseline", "ratio"]
    for algo in ("sac", "tqc"):
        for batch in (256, 1024):
            keys += [f"{algo}_{batch}", f"{algo}_{batch}_baseline", f"{algo}_{batch}_same_maths"]
            keys += [f"ratio_{algo}_{batch}", f"same_maths_ratio_{algo}_{batch}"]
    for key in keys:
        value = parsed[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    assert parsed["value"] == parsed["sac_256"] and parsed["baseline"] == parsed["sac_256_baseline"]


# ---- the maths behind "same algorithm, faster loop" -------------------------------------------------


@pytest.mark.parametrize("algo", sorted(PAIRS))
def test_policy_delay_1_matches_sb3_same_seed(algo, env):
    ours, plain = _same_start(algo, env)
    _train(ours, 1)
    _train(plain, 1)
    _assert_same(ours, plain)


def _noise_keyed_by_input(model) -> None:
    """Make the actor's sampled noise a function of its input batch, not of the call order."""
    sample = model.actor.action_log_prob

    def action_log_prob(obs: th.Tensor):
        key = zlib.crc32(obs.detach().cpu().numpy().tobytes())
        with th.random.fork_rng():
            th.manual_seed(key)
            return sample(obs)

    model.actor.action_log_prob = action_log_prob


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("algo", sorted(PAIRS))
def test_policy_delay_1_is_sb3_maths_given_the_same_noise(algo, steps, env):
    ours, plain = _same_start(algo, env)
    for model in (ours, plain):
        _noise_keyed_by_input(model)
        _train(model, steps)
    _assert_same(ours, plain)
    assert ours._n_updates == plain._n_updates == steps


@pytest.mark.parametrize("algo", sorted(PAIRS))
def test_policy_delay_2_skips_the_actor_at_odd_updates(algo, env):
    ours, _ = _same_start(algo, env, policy_delay=2)
    ours._n_updates = 1
    actor, critic, alpha = _params(ours.actor), _params(ours.critic), ours.log_ent_coef.item()
    _train(ours, 1)
    assert _max_diff(_params(ours.actor), actor) == 0.0
    assert ours.log_ent_coef.item() == alpha
    assert _max_diff(_params(ours.critic), critic) > 0.0
    assert ours._n_updates == 2
    # ... and updates it at the next (even) one.
    _train(ours, 1)
    assert _max_diff(_params(ours.actor), actor) > 0.0
    assert ours.log_ent_coef.item() != alpha
