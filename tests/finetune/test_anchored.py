"""finetune.anchored: the anchor term gives the same update in the fast and the reference loop, the critic-only
warm-up keeps the actor, and the anchor is never saved."""

from __future__ import annotations

import copy

import pytest
import torch as th

from a1_common.algos import DelayedSAC, DelayedTQC
from finetune.anchored import ANCHORED_CLASSES, AnchoredSAC, AnchoredTQC
from tests.pretrain import test_fast_update as fast_tests
from tests.pretrain.test_fast_update import BATCH, _assert_same_update, _pair, _params, _train, env  # noqa: F401


@pytest.fixture
def anchored(monkeypatch):
    """The fast-update tests' model helpers, building the anchored classes."""
    for algo, cls in ANCHORED_CLASSES.items():
        monkeypatch.setitem(fast_tests.CLASSES, algo, cls)


@pytest.mark.parametrize("algo", ["sac", "tqc"])
def test_the_anchor_term_is_the_same_in_the_fast_and_the_reference_update(env, anchored, algo):  # noqa: F811
    new, ref = _pair(algo, env)
    assert isinstance(new, ANCHORED_CLASSES[algo]) and isinstance(ref, ANCHORED_CLASSES[algo])
    anchor = copy.deepcopy(new.actor).requires_grad_(False)
    with th.no_grad():
        for p in anchor.parameters():
            p.add_(0.05 * th.randn_like(p))
    for model in (new, ref):
        model.anchor_to(anchor, 0.5)
    logged_new, logged_ref = _train(new, 1), _train(ref, 1)
    _assert_same_update(new, ref, logged_new, logged_ref)
    assert abs(logged_new["train/anchor_distance"] - logged_ref["train/anchor_distance"]) <= 1e-5
    assert logged_new["train/anchor_distance"] > 0


def test_without_an_anchor_it_is_plain_delayed_sac(env, anchored):  # noqa: F811
    new, ref = _pair("sac", env)
    new.anchor_to(new.actor, 0.0)  # weight 0: no term
    logged = _train(new, 2)
    assert "train/anchor_distance" not in logged and not new.anchored


def test_critic_only_steps_keep_the_actor_and_the_entropy_coefficient(env, anchored):  # noqa: F811
    new, _ = _pair("sac", env)
    actor, critic, log_alpha = _params(new.actor), _params(new.critic), new.log_ent_coef.detach().clone()
    new.train_critics_only(3, BATCH)
    assert all(th.equal(v, _params(new.actor)[k]) for k, v in actor.items())
    assert th.equal(log_alpha, new.log_ent_coef.detach())
    assert any(not th.equal(v, _params(new.critic)[k]) for k, v in critic.items())


def test_the_anchor_is_not_saved(env, anchored, tmp_path):  # noqa: F811
    new, _ = _pair("tqc", env)
    new.anchor_to(new.actor, 0.5)
    new.save(tmp_path / "model.zip")
    loaded = AnchoredTQC.load(tmp_path / "model.zip", device="cpu")
    assert loaded.actor_anchor is None and loaded.anchor_weight == 0.0 and not loaded.anchored
    assert issubclass(AnchoredSAC, DelayedSAC) and issubclass(AnchoredTQC, DelayedTQC)
