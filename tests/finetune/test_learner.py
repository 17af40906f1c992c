"""The learner without sockets: real SB3 model from a real bundle, real buffers, real checkpoint files."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th

from deploy.runner import PolicyRunner
from finetune.buffers import MixedReplayBuffer
from finetune.learner import Learner
from finetune.learner_config import LearnerConfig
from tests.finetune.conftest import make_batch


def _learner(tiny_bundle, tmp_path, **kw) -> Learner:
    config = LearnerConfig(bundle=str(tiny_bundle("sac")), out=str(tmp_path / "ft"), **kw)
    return Learner(config, progress=False)


def _feed(learner: Learner, batch) -> None:
    new = learner.tracker.accept(batch)
    if new is not None:
        learner.insert(new)


def test_real_transitions_are_stored_with_their_sequence_numbers(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=10, utd=2.0)
    c = learner.contract
    _feed(learner, make_batch(c, "a1", 0, 30, ends={9: "fall", 29: "timeout"}))
    _feed(learner, make_batch(c, "a1", 20, 20))  # rows 20..29 again: only 30..39 are new
    assert learner.real_size == 40
    np.testing.assert_array_equal(learner.real_sequence_numbers()["a1"], np.arange(40))
    assert learner.stats.episodes == 2 and learner.stats.falls == 1 and learner.stats.timeouts == 1
    assert learner.stats.owed_updates == pytest.approx(2.0 * 40)
    # the SB3 buffer: a fall is done, a time-out is done + timeout (so the critic bootstraps through it)
    assert learner.real.dones[9, 0] == 1 and learner.real.timeouts[9, 0] == 0
    assert learner.real.dones[29, 0] == 1 and learner.real.timeouts[29, 0] == 1


def test_batches_mix_sim_and_real_data(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=0, real_fraction=0.25)
    assert learner.mixed.sim is not None and learner.mixed.sim.size() > 0, "the tiny bundle has a sim buffer"
    assert learner.mixed.split(64) == (0, 64)  # no real data yet: all sim
    _feed(learner, make_batch(learner.contract, "a1", 0, 50))
    assert learner.mixed.split(64) == (16, 48)
    batch = learner.mixed.sample(64, env=learner.model._vec_normalize_env)
    assert batch.observations.shape == (64, learner.contract.obs_dim)
    # the first 16 rows are real: their (normalized) observations come from the real buffer
    real_obs = learner.model._vec_normalize_env.normalize_obs(learner.real.observations[:50, 0])
    first = batch.observations[:16].numpy()
    assert all(np.abs(real_obs - row).max(axis=1).min() < 1e-5 for row in first)
    before = [p.detach().clone() for p in learner.model.critic.parameters()]
    learner.model.train(gradient_steps=3, batch_size=64)
    assert any(not th.equal(a, b) for a, b in zip(before, learner.model.critic.parameters(), strict=True))


def test_mixed_buffer_without_sim_data_samples_only_real(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, use_sim_buffer=False)
    assert learner.mixed.sim is None
    _feed(learner, make_batch(learner.contract, "a1", 0, 10))
    assert learner.mixed.split(32) == (32, 0)
    with pytest.raises(ValueError, match="real_fraction"):
        MixedReplayBuffer(None, learner.real, 1.5)


def test_the_mixed_buffer_is_an_sb3_replay_buffer_writing_to_the_real_one(tiny_bundle, tmp_path):
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    learner = _learner(tiny_bundle, tmp_path, learning_starts=0)
    mixed, real, sim, c = learner.mixed, learner.real, learner.mixed.sim, learner.contract
    assert isinstance(mixed, ReplayBuffer) and learner.model.replay_buffer is mixed
    b = make_batch(c, "a1", 0, 2)
    mixed.add(b.obs[:1], b.next_obs[:1], b.actions[:1], b.rewards[:1], np.array([False]), [{}])
    assert real.size() == 1 and mixed.pos == real.pos == 1 and not mixed.full
    assert mixed.size() == 1 + sim.size() and mixed.buffer_size == real.buffer_size
    batch = mixed.sample(8, env=learner.model._vec_normalize_env)
    assert isinstance(batch, ReplayBufferSamples) and batch.observations.shape == (8, c.obs_dim)
    # rows by index: the real buffer's first, then the simulator's, returned in the order asked for
    rows = mixed._get_samples(np.array([1, 0]))
    assert th.equal(rows.observations[1], th.as_tensor(b.obs[0]))
    assert any(th.equal(rows.observations[0], th.as_tensor(o)) for o in sim.observations[0])
    # the fast update draws one batch per call (the split is per batch), not several in one call
    calls, sample = [], mixed.sample
    mixed.sample = lambda n, env=None: calls.append(n) or sample(n, env=env)
    assert len(list(learner.model._sampled_batches(3, 16))) == 3 and calls == [16, 16, 16]
    mixed.reset()
    assert real.size() == 0 and mixed.pos == 0 and mixed.size() == sim.size()


def test_checkpoint_and_resume_continue_exactly(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=0)
    c = learner.contract
    _feed(learner, make_batch(c, "a1", 0, 64, ends={30: "fall"}))
    _feed(learner, make_batch(c, "b2", 0, 16))
    learner.model.train(gradient_steps=5, batch_size=32)
    learner.stats.updates = 5
    path = learner.checkpoint()
    assert (path / "real_buffer.npz").is_file() and (path / "finetune_state.json").is_file()
    assert learner.tracker.ack("a1").committed == 64

    resumed = Learner(LearnerConfig(out=str(tmp_path / "ft")), resume=str(tmp_path / "ft"), progress=False)
    assert resumed.real_size == 80 and resumed.stats.updates == 5 and resumed.stats.falls == 1
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(resumed.real, name)[:80], getattr(learner.real, name)[:80])
    seqs = resumed.real_sequence_numbers()
    np.testing.assert_array_equal(seqs["a1"], np.arange(64))
    np.testing.assert_array_equal(seqs["b2"], np.arange(16))
    assert resumed.tracker.ack("a1").next_expected == 64 and resumed.tracker.ack("b2").next_expected == 16
    assert resumed.model._n_updates == learner.model._n_updates
    for a, b in zip(learner.model.policy.parameters(), resumed.model.policy.parameters(), strict=True):
        assert th.equal(a, b)
    assert th.equal(learner.model.log_ent_coef, resumed.model.log_ent_coef)
    # the same batches give the same update from here: optimizer states came back too
    for one in (learner, resumed):
        th.manual_seed(3)
        np.random.seed(3)
        one.model.train(gradient_steps=2, batch_size=32)
    for a, b in zip(learner.model.policy.parameters(), resumed.model.policy.parameters(), strict=True):
        assert th.allclose(a, b, atol=1e-6)


def test_published_policy_is_the_learner_actor(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=0)
    _feed(learner, make_batch(learner.contract, "a1", 0, 64))
    learner.model.train(gradient_steps=20, batch_size=32)
    path = learner.publish_policy()
    runner = PolicyRunner(path, expected_contract=learner.contract)
    obs = make_batch(learner.contract, "a1", 0, 8).obs
    normalized = learner.model._vec_normalize_env.normalize_obs(obs)
    with th.no_grad():
        expected = learner.model.policy.actor(th.as_tensor(normalized), deterministic=True).numpy()
    raw = learner.contract.action_bounds.to_raw(expected)
    np.testing.assert_allclose(runner.act(obs), raw, atol=1e-4)
    assert learner.stats.policy_version == 1 and path.name == "policy_v00001.onnx"


def test_fresh_networks_differ_from_the_bundle(tiny_bundle, tmp_path):
    pretrained = _learner(tiny_bundle, tmp_path / "a")
    fresh = _learner(tiny_bundle, tmp_path / "b", fresh=True)
    assert fresh.mixed.sim is None, "from scratch: no simulator data either"
    a = th.cat([p.flatten() for p in pretrained.model.policy.actor.parameters()])
    b = th.cat([p.flatten() for p in fresh.model.policy.actor.parameters()])
    assert a.shape == b.shape and not th.allclose(a, b)


def test_critic_warmup_leaves_the_actor_alone(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=0, critic_warmup=8)
    _feed(learner, make_batch(learner.contract, "a1", 0, 64))
    actor = [p.detach().clone() for p in learner.model.actor.parameters()]
    critic = [p.detach().clone() for p in learner.model.critic.parameters()]
    learner.train(8)
    learner.stats.updates += 8
    assert all(th.equal(a, b) for a, b in zip(actor, learner.model.actor.parameters(), strict=True))
    assert any(not th.equal(a, b) for a, b in zip(critic, learner.model.critic.parameters(), strict=True))
    learner.train(8)  # past the warm-up: the actor learns too
    assert any(not th.equal(a, b) for a, b in zip(actor, learner.model.actor.parameters(), strict=True))


def test_a_bundle_without_buffer_gets_simulated_data_once(tiny_bundle, tmp_path):
    from pretrain.reference import copy_without_buffer

    bare = copy_without_buffer(tiny_bundle("sac"), tmp_path / "bare")
    config = LearnerConfig(bundle=str(bare), out=str(tmp_path / "ft"), sim_fill=200)
    learner = Learner(config, progress=False)
    sim = learner.mixed.sim
    assert sim is not None and sim.size() * sim.n_envs >= 200
    assert (tmp_path / "ft" / "sim_buffer.npz").is_file()
    assert np.isfinite(sim.observations[: sim.size()]).all() and np.abs(sim.actions[: sim.size()]).max() <= 1.0
    again = Learner(config, progress=False)  # read back, not simulated again
    np.testing.assert_array_equal(again.mixed.sim.observations, sim.observations)


def test_the_learning_rate_can_be_lowered_for_fine_tuning(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=0, critic_warmup=0, learning_rate=1e-4)
    _feed(learner, make_batch(learner.contract, "a1", 0, 64))
    learner.train(2)
    m = learner.model
    for optimizer in (m.actor.optimizer, m.critic.optimizer, m.ent_coef_optimizer):
        assert all(group["lr"] == pytest.approx(1e-4) for group in optimizer.param_groups)


def _actor_distance(learner: Learner, obs: th.Tensor) -> float:
    m = learner.model
    with th.no_grad():
        return float((m.actor(obs, deterministic=True) - m.actor_anchor(obs, deterministic=True)).abs().max())


@pytest.mark.parametrize("algo", ["sac", "tqc"])
def test_the_anchor_holds_the_actor_near_the_bundle(tiny_bundle, tmp_path, algo):
    """The same data and updates: an anchored actor moves less from the bundle's actor than a free one."""
    moved = {}
    for weight in (0.0, 1e3):
        config = LearnerConfig(
            bundle=str(tiny_bundle(algo)), out=str(tmp_path / f"w{weight}"), learning_starts=0, critic_warmup=0,
            learning_rate=3e-3, anchor_weight=weight, seed=0,
        )  # fmt: skip
        learner = Learner(config, progress=False)
        _feed(learner, make_batch(learner.contract, "a1", 0, 128))
        if weight == 0.0:
            assert learner.model.actor_anchor is None
            learner.model.actor_anchor = copy.deepcopy(learner.model.actor).requires_grad_(False)  # to measure only
        else:
            anchor = learner.model.actor_anchor
            assert anchor is not learner.model.actor and not any(p.requires_grad for p in anchor.parameters())
        obs = th.as_tensor(learner.obs_norm.normalize(make_batch(learner.contract, "x", 0, 64).obs), dtype=th.float32)
        th.manual_seed(0)
        learner.train(40)
        moved[weight] = _actor_distance(learner, obs)
        if weight > 0:
            assert np.isfinite(learner.model.logger.name_to_value["train/anchor_distance"])
    assert moved[0.0] > 0.0
    assert moved[1e3] < 0.5 * moved[0.0], moved


def test_the_anchor_is_the_bundle_actor_after_a_resume_and_is_not_saved(tiny_bundle, tmp_path):
    learner = _learner(tiny_bundle, tmp_path, learning_starts=0, critic_warmup=0, anchor_weight=0.5, learning_rate=3e-3)
    _feed(learner, make_batch(learner.contract, "a1", 0, 64))
    bundle_actor = copy.deepcopy(learner.model.actor_anchor.state_dict())
    learner.train(20)
    checkpoint = learner.checkpoint()
    import zipfile

    with zipfile.ZipFile(checkpoint / "model.zip") as z:
        assert "actor_anchor" not in z.read("data").decode()
    resumed = Learner(LearnerConfig(), resume=str(tmp_path / "ft"), progress=False)
    assert resumed.config.anchor_weight == 0.5 and resumed.model.anchor_weight == 0.5
    for name, value in resumed.model.actor_anchor.state_dict().items():
        assert th.equal(value, bundle_actor[name]), f"{name}: the anchor must stay the bundle's actor"
    assert any(
        not th.equal(a, b)
        for a, b in zip(resumed.model.actor.parameters(), resumed.model.actor_anchor.parameters(), strict=True)
    ), "the resumed actor is the checkpoint's, not the anchor"
