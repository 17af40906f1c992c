"""Action bounds: every method's arrays, scaling, the contract hash, bounds files, percentiles, and the clip to the
joint-target limits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from a1_contract import get_contract
from a1_contract.variants import PPO_PERCENTILE_HIGH, PPO_PERCENTILE_LOW, joint_limit_bounds
from pretrain import config as cfgmod
from pretrain.bounds import load_bounds_file, percentile_bounds, resolve_bounds, save_bounds_file
from pretrain.config import BoundsConfig
from pretrain.factory import make_contract

CONTRACT = get_contract()
N = CONTRACT.num_joints


def bounds_of(**cfg: object):
    """The method's own arrays (the clip to the joint-target limits has its own test below)."""
    cfg.setdefault("clip_to_targets", False)
    return resolve_bounds(BoundsConfig(**cfg), CONTRACT)


def test_every_bounds_method_resolves_to_its_arrays(tmp_path: Path) -> None:
    assert bounds_of(method="isaaclab3").low == (-1.0,) * N and bounds_of(method="isaaclab3").high == (1.0,) * N
    sym = bounds_of(method="symmetric", width=2.5)
    assert sym.low == (-2.5,) * N and sym.high == (2.5,) * N
    low, high = [-0.5 - 0.1 * i for i in range(N)], [0.3 + 0.2 * i for i in range(N)]
    explicit = bounds_of(method="explicit", low=low, high=high)
    assert explicit.low == tuple(low) and explicit.high == tuple(high) and explicit.method == "explicit"
    for bad in ({"low": low[:-1], "high": high}, {"low": low, "high": high + [1.0]}, {"low": low}):
        with pytest.raises(ValueError, match=f"bounds.low and bounds.high with {N} values"):
            bounds_of(method="explicit", **bad)
    assert bounds_of(method="joint_limits") == joint_limit_bounds(CONTRACT)
    limits, default = np.asarray(CONTRACT.joint_pos_limits), np.asarray(CONTRACT.default_joint_pos)
    # the wider side of each joint's limits, in raw units: the targets can reach both joint limits
    width = np.maximum(default - limits[:, 0], limits[:, 1] - default) / CONTRACT.action_scale
    np.testing.assert_allclose(bounds_of(method="joint_limits").high, width)
    published = bounds_of(method="ppo_percentile")
    assert published.low == PPO_PERCENTILE_LOW and published.high == PPO_PERCENTILE_HIGH
    assert published.low[0] == -2.0 and published.high[7] == 3.8

    measured = percentile_bounds(np.random.default_rng(0).normal(0.2, 0.7, size=(400, N)))
    path = save_bounds_file(tmp_path / "b.json", measured, CONTRACT, percentiles=[2.5, 97.5])
    from_file = bounds_of(method="ppo_percentile", source=str(path))
    assert from_file == measured and from_file != published
    with pytest.raises(ValueError, match="bounds.scale must be > 0"):
        bounds_of(method="isaaclab3", scale=0.0)
    with pytest.raises(ValueError, match="unknown bounds.method"):
        bounds_of(method="wide")


@pytest.mark.parametrize(
    "cfg",
    [
        {"method": "isaaclab3"},
        {"method": "symmetric", "width": 3.0},
        {"method": "explicit", "low": [-1.0 - 0.1 * i for i in range(12)], "high": [0.5 + 0.1 * i for i in range(12)]},
        {"method": "ppo_percentile"},
        {"method": "joint_limits"},
    ],
    ids=lambda c: c["method"],
)
def test_scale_multiplies_and_raw_normalized_round_trip(cfg: dict) -> None:
    base = bounds_of(**cfg)
    scaled = bounds_of(**cfg, scale=1.25)
    np.testing.assert_allclose(scaled.low, 1.25 * np.asarray(base.low))
    np.testing.assert_allclose(scaled.high, 1.25 * np.asarray(base.high))
    assert scaled.method == f"{base.method}_x1.25"
    for b in (base, scaled):
        np.testing.assert_allclose(b.to_raw(-np.ones(N)), b.low)
        np.testing.assert_allclose(b.to_raw(np.ones(N)), b.high)
        np.testing.assert_allclose(b.to_raw(np.zeros(N)), 0.5 * (np.asarray(b.low) + np.asarray(b.high)))
        action = np.random.default_rng(1).uniform(-1, 1, size=(50, N))
        np.testing.assert_allclose(b.to_normalized(b.to_raw(action)), action, atol=1e-12)
        raw = np.random.default_rng(2).uniform(b.low, b.high, size=(50, N))
        np.testing.assert_allclose(b.to_raw(b.to_normalized(raw)), raw, atol=1e-12)
    # the bounds are part of the contract: other bounds, other hash; same bounds, same hash
    flags = {"timesteps": 1, "bounds.clip_to_targets": False, **{f"bounds.{k}": v for k, v in cfg.items()}}
    config = cfgmod.resolve(None, flags)
    again = cfgmod.resolve(None, flags)
    scaled_cfg = cfgmod.resolve(None, {**flags, "bounds.scale": 1.25})
    assert make_contract(config).action_bounds == base
    assert make_contract(config).hash == make_contract(again).hash != make_contract(scaled_cfg).hash


def test_contract_hash_differs_between_methods() -> None:
    hashes = {
        method: make_contract(cfgmod.resolve(None, {"timesteps": 1, "bounds.method": method})).hash
        for method in ("isaaclab3", "ppo_percentile", "joint_limits")
    }
    assert len(set(hashes.values())) == 3
    width2 = make_contract(cfgmod.resolve(None, {"timesteps": 1, "bounds.method": "symmetric", "bounds.width": 2.0}))
    assert width2.hash != hashes["isaaclab3"]


def test_bounds_file_with_another_joint_order_is_refused(tmp_path: Path) -> None:
    bounds = bounds_of(method="ppo_percentile")
    path = save_bounds_file(tmp_path / "b.json", bounds, CONTRACT)
    assert load_bounds_file(path, CONTRACT) == bounds
    doc = json.loads(path.read_text())
    doc["joint_names"] = doc["joint_names"][3:] + doc["joint_names"][:3]  # another leg order
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="joint order"):
        bounds_of(method="ppo_percentile", source=str(path))
    path.write_text(json.dumps({**doc, "kind": "something else"}))
    with pytest.raises(ValueError, match="not a version-1 bounds file"):
        load_bounds_file(path, CONTRACT)
    with pytest.raises(ValueError, match="cannot read bounds file"):
        load_bounds_file(tmp_path / "absent.json", CONTRACT)


def test_percentile_bounds_on_synthetic_actions() -> None:
    raw = np.stack([np.linspace(j, j + 10.0, 1001) for j in range(N)], axis=1)
    rng = np.random.default_rng(0)
    raw = rng.permuted(raw, axis=0)  # order does not matter
    bounds = percentile_bounds(raw)
    np.testing.assert_allclose(bounds.low, np.arange(N) + 0.25)
    np.testing.assert_allclose(bounds.high, np.arange(N) + 9.75)
    assert bounds.method == "ppo_percentile"
    five = percentile_bounds(raw, 5.0, 95.0)
    np.testing.assert_allclose(five.low, np.arange(N) + 0.5)
    np.testing.assert_allclose(five.high, np.arange(N) + 9.5)

    raw[:, 4] = 0.7  # a joint the policy never moves keeps a usable width
    still = percentile_bounds(raw)
    assert (still.low[4], still.high[4]) == pytest.approx((0.65, 0.75))
    with pytest.raises(ValueError, match="at least 100 actions"):
        percentile_bounds(raw[:99])
    raw[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        percentile_bounds(raw)


def test_bounds_are_clipped_to_the_joint_target_limits_unless_asked_not_to() -> None:
    from a1_contract import get_contract
    from a1_contract.variants import ppo_percentile_bounds

    contract = get_contract()
    low_lim, high_lim = contract.raw_target_limits()
    published = ppo_percentile_bounds()
    clipped = resolve_bounds(BoundsConfig(method="ppo_percentile"), contract)
    assert clipped.method == "ppo_percentile_clip"
    assert (np.asarray(clipped.high) <= high_lim + 1e-12).all() and (np.asarray(clipped.low) >= low_lim - 1e-12).all()
    np.testing.assert_allclose(clipped.high, np.minimum(published.high, high_lim))
    np.testing.assert_allclose(clipped.low, np.maximum(published.low, low_lim))
    passing = [contract.joint_names[i] for i in np.flatnonzero(np.asarray(published.high) > high_lim)]
    assert passing == ["FL_calf_joint", "FR_calf_joint", "RR_calf_joint"], "published calf bounds pass the limit"
    assert resolve_bounds(BoundsConfig(method="ppo_percentile", clip_to_targets=False), contract) == published
    inside = resolve_bounds(BoundsConfig(method="isaaclab3"), contract)
    assert inside.method == "symmetric_1", "bounds inside the limits keep their name"
