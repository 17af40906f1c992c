"""Collecting and learning at the same time (``offpolicy.concurrent_update``, ``a1_common/algos/concurrent.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from a1_common.algos.concurrent import UpdateWhileStepping, update_while_stepping
from a1_common.bundle import load_bundle_files
from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv
from a1_contract import get_contract
from pretrain.factory import make_contract, make_env, make_model, wrap_obs_norm
from pretrain.train import parse, train


def test_a_background_step_gives_exactly_what_a_step_in_the_callers_thread_gives():
    short = get_contract().replace(episode_length_s=0.3)  # 15 steps: resets happen inside background steps
    envs = [A1MujocoVecEnv(4, short, seed=3, num_threads=1, background=flag) for flag in (False, True)]
    obs = [env.reset() for env in envs]
    np.testing.assert_array_equal(obs[0], obs[1])
    rng = np.random.default_rng(0)
    dones_seen = 0
    for _ in range(60):
        actions = rng.uniform(-1, 1, (4, 12)).astype(np.float32)
        out = []
        for env in envs:
            env.step_async(actions)
            out.append(env.step_wait())
        for a, b in zip(out[0][:3], out[1][:3], strict=True):
            np.testing.assert_array_equal(a, b)
        assert [sorted(i) for i in out[0][3]] == [sorted(i) for i in out[1][3]]
        dones_seen += int(out[0][2].sum())
    assert dones_seen >= 12, "every robot's episode ended at least three times"
    for env in envs:
        env.close()


def test_a_background_step_in_flight_is_finished_by_reset_and_close_and_cannot_be_doubled():
    env = A1MujocoVecEnv(2, seed=0, num_threads=1, background=True)
    env.reset()
    env.step_async(np.zeros((2, 12), np.float32))
    with pytest.raises(RuntimeError, match="twice"):
        env.step_async(np.zeros((2, 12), np.float32))
    env.reset()  # waits for the step, drops it
    with pytest.raises(RuntimeError, match="without step_async"):
        env.step_wait()
    with pytest.raises(ValueError):  # a bad action is refused in the caller's thread, at once
        env.step_async(np.full((2, 12), np.nan, np.float32))
    env.step_async(np.zeros((2, 12), np.float32))
    env.close()


class _UpdatesPerStep(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[int] = []

    def _on_step(self) -> bool:
        self.updates.append(int(self.model._n_updates))
        return True


@pytest.mark.parametrize("algo", ["sac", "tqc"])
def test_the_concurrent_loop_takes_the_configured_gradient_steps_during_the_env_steps(algo):
    config, _ = parse(["--algo", algo, "--timesteps", "200", "--num-envs", "4", "--offpolicy.learning_starts", "40",
                       "--offpolicy.net_arch", "[16]", "--offpolicy.gradient_steps", "3", "--seed", "1"])  # fmt: skip
    contract = make_contract(config)
    counts = {}
    for concurrent in (False, True):
        norm = wrap_obs_norm(make_env(config, contract, background=concurrent), config)
        env = UpdateWhileStepping(norm) if concurrent else norm
        model = make_model(config, env)
        if concurrent:
            update_while_stepping(model, env)
        ran = []
        if concurrent:  # record that each deferred update runs inside an env step (between async and wait)
            inner = env.during_step

            def during_step(inner=inner, model=model, ran=ran) -> None:
                pending = model._deferred_update is not None
                inner()
                ran.append(pending)

            env.during_step = during_step
        callback = _UpdatesPerStep()
        model.learn(total_timesteps=200, callback=callback)
        counts[concurrent] = (model._n_updates, callback.updates)
        env.close()
        if concurrent:
            assert sum(ran) >= 35, "the updates ran during env steps"
    (seq_total, seq_steps), (con_total, con_steps) = counts[False], counts[True]
    # 50 vector steps; updates after each step once 40 transitions are in: the same count of gradient steps,
    # the last deferred update run when learn() returns.
    assert seq_total == con_total > 0 and seq_total % 3 == 0
    # At the callback of each step, both loops have run the updates of every earlier step.
    assert seq_steps == con_steps


def test_a1_pretrain_trains_concurrently_and_refuses_it_where_it_cannot(tmp_path: Path):
    config, _ = parse(["--timesteps", "400", "--num-envs", "4", "--offpolicy.learning_starts", "40",
                       "--offpolicy.net_arch", "[16]", "--out", str(tmp_path / "run"),
                       "--offpolicy.concurrent_update", "true", "--save-replay-buffer", "false"])  # fmt: skip
    summary = train(config, progress=False)
    bundle = load_bundle_files(summary["final_bundle"])
    assert bundle.meta["num_timesteps"] >= 400 and bundle.config["offpolicy"]["concurrent_update"] is True
    ppo, _ = parse(["--algo", "ppo", "--timesteps", "100", "--num-envs", "4", "--out", str(tmp_path / "ppo"),
                    "--offpolicy.concurrent_update", "true"])  # fmt: skip
    with pytest.raises(Exception, match="concurrent_update"):
        train(ppo, progress=False)


def test_a1_pretrain_runs_sb3s_update_when_asked_and_a_resume_may_switch_it(tmp_path: Path, monkeypatch):
    """``--offpolicy.fast_update false`` (the baseline of benchmarks/train_throughput.py) trains with the reference
    loop; a resume may change it (it changes how fast, not what is learned)."""
    from a1_common.algos import DelayedSAC

    ran: list[str] = []
    for name, tag in (("_train_reference", "ref"), ("_train_fast", "fast")):
        monkeypatch.setattr(DelayedSAC, name, _spy(getattr(DelayedSAC, name), tag, ran))
    config, _ = parse(["--timesteps", "200", "--num-envs", "4", "--offpolicy.learning_starts", "40",
                       "--offpolicy.net_arch", "[16]", "--out", str(tmp_path / "run"),
                       "--offpolicy.fast_update", "false"])  # fmt: skip
    summary = train(config, progress=False)
    assert ran and set(ran) == {"ref"}
    assert load_bundle_files(summary["final_bundle"]).config["offpolicy"]["fast_update"] is False
    ran.clear()
    resumed, args = parse(["--resume", summary["final_bundle"], "--timesteps", "200", "--out", str(tmp_path / "more"),
                           "--offpolicy.fast_update", "true"])  # fmt: skip
    more = train(resumed, resume=args.resume, progress=False)
    assert ran and set(ran) == {"fast"}
    assert load_bundle_files(more["final_bundle"]).meta["num_timesteps"] >= 400


def _spy(method, tag: str, calls: list[str]):
    def spy(self, *args, **kwargs):
        calls.append(tag)
        return method(self, *args, **kwargs)

    return spy
