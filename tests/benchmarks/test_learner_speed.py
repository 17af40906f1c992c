"""The learner benchmark runs and reports its JSON (with and without SBX); DelayedSAC/DelayedTQC do SB3's maths at
policy_delay=1."""

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

from a1_common.algos import DelayedSAC, DelayedTQC
from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

BENCH_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, os.path.abspath(BENCH_DIR))
import learner_speed  # noqa: E402
import sbx_baseline  # noqa: E402

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


def _same_start(algo, env, policy_delay: int = 1, fast_update: bool = False):
    """(ours, plain) with identical weights, entropy coefficient and replay buffer."""
    ours_cls, plain_cls = PAIRS[algo]
    ours = _model(ours_cls, env, policy_delay=policy_delay, fast_update=fast_update)
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
    # The step-by-step loop does SB3's ops (rounding aside); the fast update the same maths with other ops.
    tol = 1e-5 if ours.fast_update else 1e-6
    for name in ("critic", "critic_target", "actor"):
        diff = _max_diff(_params(getattr(ours, name)), _params(getattr(plain, name)))
        assert diff <= tol, f"{name} differs from SB3 by {diff:.3g}"
    assert abs(ours.log_ent_coef.item() - plain.log_ent_coef.item()) <= tol


# ---- the benchmark itself --------------------------------------------------------------------------


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out
    return out, json.loads(out.strip().splitlines()[-1])


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_quick_run_prints_json_without_sbx(capsys, monkeypatch):
    """CI has no SBX: the benchmark says so, still runs every other variant, and leaves the baseline null."""
    monkeypatch.setitem(sys.modules, "sbx", None)  # ``import sbx`` raises ImportError
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    args = ["--quick", "--nets", "32x32,16x16", "--batches", "64,32"]
    result = learner_speed.main(args)
    out, parsed = _last_json(capsys)
    assert sbx_baseline.SBX_MISSING in out
    assert parsed == json.loads(json.dumps(result))
    assert parsed["metric"] == "grad_steps_per_s"
    assert parsed["value_of"] == "sac_32x32_64"  # the first cell when sac 256x256 256 is not run
    assert parsed["baseline"] is None and parsed["ratio"] is None and parsed["sbx"] is None
    assert parsed["value"] == parsed["sac_32x32_64"] and _positive(parsed["ratio_sb3"])
    for algo in ("sac", "tqc"):
        for net in ("32x32", "16x16"):
            for batch in (64, 32):
                key = f"{algo}_{net}_{batch}"
                for suffix in ("", "_ours_ref", "_same_maths", "_sb3"):
                    assert _positive(parsed[key + suffix]), (key + suffix, parsed[key + suffix])
                assert parsed[key + "_sbx"] is None and parsed[f"ratio_{key}"] is None
                assert _positive(parsed[f"ratio_sb3_{key}"])


def test_quick_run_with_sbx():
    # In its own process: JAX starts threads, and a pytest process that later forks (subprocesses, multiprocessing)
    # must not hold them. SBX is installed by scripts/setup.sh (the `bench` extra); without it this test fails.
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    argv = ["--quick", "--nets", "256x256", "--batches", "256", "--variants", "ours,plain,sbx"]
    proc = subprocess.run([sys.executable, learner_speed.__file__, *argv], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert parsed["value_of"] == "sac_256x256_256" and parsed["baseline_of"] == "sbx"
    assert parsed["value"] == parsed["sac_256x256_256"] and parsed["baseline"] == parsed["sac_256x256_256_sbx"]
    assert parsed["ratio"] == pytest.approx(parsed["value"] / parsed["baseline"], rel=0.01)
    for key in ("tqc_256x256_256", "tqc_256x256_256_sbx", "ratio_tqc_256x256_256", "ratio_sb3", "ratio"):
        assert _positive(parsed[key]), key
    assert parsed["sac_256x256_256_ours_ref"] is None  # not asked for


# ---- the maths behind "same algorithm, faster loop" -------------------------------------------------


@pytest.mark.parametrize("fast_update", [False, True])
@pytest.mark.parametrize("algo", sorted(PAIRS))
def test_policy_delay_1_matches_sb3_same_seed(algo, fast_update, env):
    ours, plain = _same_start(algo, env, fast_update=fast_update)
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
    ours, plain = _same_start(algo, env)  # the step-by-step loop (the fast one: tests/pretrain/test_fast_update.py)
    for model in (ours, plain):
        _noise_keyed_by_input(model)
        _train(model, steps)
    _assert_same(ours, plain)
    assert ours._n_updates == plain._n_updates == steps


@pytest.mark.parametrize("fast_update", [False, True])
@pytest.mark.parametrize("algo", sorted(PAIRS))
def test_policy_delay_2_skips_the_actor_at_odd_updates(algo, fast_update, env):
    ours, _ = _same_start(algo, env, policy_delay=2, fast_update=fast_update)
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
