"""Action-space diagnostics: bounds usage, warnings, initial PPO vs SAC exploration, and the PNG plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from a1_contract import ActionBounds, get_contract, isaaclab3_bounds, joint_limit_bounds, ppo_percentile_bounds
from a1_contract.variants import PPO_PERCENTILE_HIGH, PPO_PERCENTILE_LOW
from pretrain.action_diagnostics import (
    bounds_usage,
    bounds_warning,
    initial_distributions,
    plot_action_histograms,
    plot_initial_distributions,
)

NAMES = get_contract().joint_names
J = len(NAMES)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=10_000):
    assert path.exists()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes
    return Image.open(path).size


def uniform_actions(lows, highs, n=40_000, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(np.asarray(lows), np.asarray(highs), size=(n, len(lows)))


def test_used_fraction_of_uniform_subrange():
    # U[a, b] has its 2.5/97.5 percentiles at a + 0.025 (b - a), a + 0.975 (b - a): used width 0.95 (b - a).
    bounds = ActionBounds.symmetric(10.0, J)
    lows = np.linspace(-8.0, 0.0, J)
    highs = lows + np.linspace(1.0, 7.5, J)  # all within [-8, 7.5]
    usage = bounds_usage(uniform_actions(lows, highs), bounds, joint_names=NAMES)
    expected = 0.95 * (highs - lows) / 20.0
    got = np.array([j["used_fraction"] for j in usage["joints"]])
    np.testing.assert_allclose(got, expected, atol=0.005)
    np.testing.assert_allclose([j["p_low"] for j in usage["joints"]], lows + 0.025 * (highs - lows), atol=0.05)
    np.testing.assert_allclose([j["p_high"] for j in usage["joints"]], lows + 0.975 * (highs - lows), atol=0.05)
    np.testing.assert_allclose([j["width_ratio"] for j in usage["joints"]], 1.0 / expected, rtol=0.02)
    assert [j["name"] for j in usage["joints"]] == list(NAMES)
    assert usage["summary"]["mean_used_fraction"] == pytest.approx(expected.mean(), abs=0.005)
    assert usage["summary"]["max_saturated_fraction"] == 0.0  # nothing within 0.2 of +-10
    assert usage["summary"]["outside_fraction"] == 0.0
    json.dumps(usage, allow_nan=False)  # JSON-serializable, no NaN/inf


def test_saturated_and_outside_fractions():
    bounds = ActionBounds.symmetric(1.0, 2)
    n = 10_000
    raw = np.zeros((n, 2))
    raw[: n // 4, 0] = 1.0  # 25% exactly at the high bound
    raw[: n // 10, 1] = -1.5  # 10% beyond the low bound (SB3 would clip these)
    raw[n // 10 : n // 10 + n // 20, 1] = 0.97  # 5% just inside, not within 1% of the width (0.98)
    usage = bounds_usage(raw, bounds)
    assert usage["joints"][0]["saturated_fraction"] == pytest.approx(0.25)
    assert usage["joints"][1]["saturated_fraction"] == pytest.approx(0.10)
    assert usage["joints"][1]["outside_fraction"] == pytest.approx(0.10)
    assert usage["joints"][0]["outside_fraction"] == 0.0
    assert usage["summary"]["outside_fraction"] == pytest.approx(0.10)


def test_bounds_usage_rejects_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        bounds_usage(np.zeros((10, 3)), isaaclab3_bounds())
    with pytest.raises(ValueError, match="joint names"):
        bounds_usage(np.zeros((10, J)), isaaclab3_bounds(), joint_names=NAMES[:3])


def test_warning_fires_for_wide_bounds_and_names_joints():
    usage = bounds_usage(uniform_actions([-3.0] * J, [3.0] * J), ActionBounds.symmetric(100.0, J), joint_names=NAMES)
    msg = bounds_warning(usage)
    assert msg is not None
    assert "symmetric_100" in msg and "12/12" in msg
    for name in NAMES:
        assert name in msg
    assert "narrow" not in msg


def test_warning_names_only_the_wide_joints():
    # Joint 3 uses [-0.5, 0.5] of [-3.2, 3.2] (ratio ~6.7 > 4); the others use [-3, 3] (ratio ~1.1).
    lows, highs = [-3.0] * J, [3.0] * J
    lows[3], highs[3] = -0.5, 0.5
    usage = bounds_usage(uniform_actions(lows, highs), ActionBounds.symmetric(3.2, J), joint_names=NAMES)
    msg = bounds_warning(usage)
    assert msg is not None and "1/12" in msg and NAMES[3] in msg
    assert all(name not in msg for k, name in enumerate(NAMES) if k != 3)
    assert bounds_warning(usage, wide_ratio=8.0) is None  # 6.7x wide is below an 8x threshold


def test_no_warning_for_well_matched_bounds():
    usage = bounds_usage(uniform_actions([-3.0] * J, [3.0] * J), ActionBounds.symmetric(3.2, J), joint_names=NAMES)
    assert bounds_warning(usage) is None


def test_warning_reports_saturation_for_narrow_bounds():
    # A policy wanting N(0, 3) under [-1, 1] bounds: clipped, at a bound ~74% of the time.
    rng = np.random.default_rng(2)
    raw = np.clip(rng.normal(0.0, 3.0, size=(20_000, J)), -1.0, 1.0)
    usage = bounds_usage(raw, isaaclab3_bounds(), joint_names=NAMES)
    expected = math.erfc(0.98 / (3.0 * math.sqrt(2.0)))  # P(|N(0, 3)| > 0.98)
    assert usage["summary"]["mean_saturated_fraction"] == pytest.approx(expected, abs=0.02)
    msg = bounds_warning(usage)
    assert msg is not None and "narrow" in msg and NAMES[0] in msg and NAMES[-1] in msg
    assert "wider" not in msg


def test_initial_sac_spread_dwarfs_ppo_for_wide_bounds():
    bounds = ActionBounds.symmetric(100.0, J)
    d = initial_distributions(bounds, n=20_000)
    ppo, sac = d["ppo"], d["sac"]
    assert ppo.shape == sac.shape == (20_000, J)
    assert np.all(sac >= -100.0) and np.all(sac <= 100.0)
    # std of tanh(N(0, 1)) is ~0.63 -> ~63 raw units; PPO's N(0, 1) has std 1.
    assert 55.0 < sac.std() < 70.0
    assert ppo.std() == pytest.approx(1.0, abs=0.03)
    assert sac.std() > 30.0 * ppo.std()
    # PPO stays within +-5 almost always (Raffin: "less than 5% of the action space").
    assert np.mean(np.abs(ppo) < 5.0) > 0.999
    assert np.mean(np.abs(sac) > 50.0) > 0.3
    # Warm-up samples are uniform over the bounds: std 200 / sqrt(12).
    assert d["sac_warmup"].std() == pytest.approx(200.0 / math.sqrt(12.0), rel=0.03)


def test_sac_centres_on_bounds_midpoint_for_asymmetric_bounds():
    bounds = ppo_percentile_bounds()
    midpoint = 0.5 * (np.asarray(PPO_PERCENTILE_LOW) + np.asarray(PPO_PERCENTILE_HIGH))
    assert abs(midpoint[7]) > 1.5  # (-0.4 + 3.8) / 2 = 1.7: far from raw 0
    d = initial_distributions(bounds, n=40_000, seed=3)
    np.testing.assert_allclose(np.median(d["sac"], axis=0), midpoint, atol=0.06)
    np.testing.assert_allclose(np.median(d["ppo"], axis=0), 0.0, atol=0.06)
    # A tiny SAC std puts every sample at the midpoint.
    tight = initial_distributions(bounds, sac_std=1e-6, n=1_000)["sac"]
    np.testing.assert_allclose(tight, np.broadcast_to(midpoint, tight.shape), atol=1e-3)


def test_ppo_clipping_and_sac_log_std():
    bounds = isaaclab3_bounds()
    clipped = initial_distributions(bounds, n=40_000)["ppo"]
    assert clipped.min() == -1.0 and clipped.max() == 1.0
    assert np.mean(np.abs(clipped) == 1.0) == pytest.approx(math.erfc(1.0 / math.sqrt(2.0)), abs=0.01)
    unclipped = initial_distributions(bounds, n=40_000, clip=False)["ppo"]
    assert np.abs(unclipped).max() > 3.0
    # log_std -3 -> std 0.05: tanh barely bends, raw std ~0.05 on [-1, 1].
    small = initial_distributions(bounds, sac_log_std_init=-3.0, n=40_000)["sac"]
    assert small.std() == pytest.approx(math.exp(-3.0), rel=0.03)


def test_plot_action_histograms_writes_png(tmp_path):
    rng = np.random.default_rng(4)
    raw = rng.normal(0.0, 1.0, size=(5_000, J))
    out = plot_action_histograms(raw, ActionBounds.symmetric(100.0, J), NAMES, tmp_path / "sub" / "hist.png")
    width, height = assert_png(out, min_bytes=30_000)
    assert width > height  # 3 x 4 grid, landscape


def test_plot_initial_distributions_writes_png(tmp_path):
    presets = [
        ActionBounds.symmetric(100.0, J),
        isaaclab3_bounds(),
        ppo_percentile_bounds(),
        joint_limit_bounds(get_contract()),
    ]
    out = plot_initial_distributions(presets, tmp_path / "init.png", joint_index=7, joint_names=NAMES, n=10_000)
    _, height = assert_png(out, min_bytes=30_000)
    _, height_two = assert_png(plot_initial_distributions(presets[:2], tmp_path / "two.png", n=5_000))
    assert height > 1.5 * height_two  # one row per preset
    pooled = plot_initial_distributions(presets[:2], tmp_path / "pooled.png", joint_index=None, n=5_000)
    assert_png(pooled)
    with pytest.raises(ValueError):
        plot_initial_distributions([], tmp_path / "none.png")
