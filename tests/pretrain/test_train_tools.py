"""The other ``python -m pretrain`` tools on a tiny trained bundle: ``walk``, ``actions`` and ``bounds``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from a1_common.bundle import load_bundle_files
from a1_contract.variants import joint_limit_bounds
from pretrain import config as cfgmod
from pretrain.bounds import resolve_bounds
from pretrain.config import BoundsConfig
from pretrain.factory import make_contract
from tests.pretrain.conftest import Runs

REPO = Path(__file__).resolve().parents[2]


def test_walk_cli_reports_json_and_fails_an_untrained_policy(runs: Runs) -> None:
    run_dir, _, _ = runs.get("sac")
    res = subprocess.run(
        [sys.executable, "-m", "pretrain", "walk", str(run_dir), "--seconds", "0.5", "--num-envs", "2", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 1, res.stderr
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["walks"] is False and result["num_envs"] == 2 and result["command_x"] == 0.5
    assert 0 < result["seconds"] <= 0.5


def test_actions_cli_bundle_fresh_and_initial(runs: Runs, tmp_path: Path) -> None:
    from pretrain.__main__ import main

    run_dir, _, _ = runs.get("sac")
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"offpolicy": {"net_arch": [32, 32], "buffer_size": 1000}}))
    cases = {
        "bundle": [str(run_dir), "--steps", "10", "--num-envs", "2"],
        "fresh": ["--fresh", "--config", str(tiny), "--bounds.method", "isaaclab3", "--steps", "10", "--num-envs", "2"],
        "initial": ["--initial"],
    }
    for name, argv in cases.items():
        out = tmp_path / name
        assert main(["actions", *argv, "-o", str(out)]) == 0
        pngs = sorted(p.name for p in out.glob("*.png"))
        assert pngs == (["initial_distributions.png"] if name == "initial" else ["actions.png"]), name
        assert (out / pngs[0]).read_bytes()[:4] == b"\x89PNG"
        if name != "initial":
            usage = json.loads((out / "usage.json").read_text())
            assert 0 < usage["summary"]["mean_used_fraction"] <= 1
    with pytest.raises(SystemExit):
        main(["actions", "--fresh", "--initial"])


def test_bounds_cli_writes_a_file_that_training_can_use(runs: Runs, tmp_path: Path) -> None:
    from pretrain.__main__ import main

    run_dir, _, _ = runs.get("ppo")
    out = tmp_path / "bounds.json"
    assert main(["bounds", str(run_dir), "-o", str(out), "--steps", "50", "--num-envs", "2"]) == 0
    doc = json.loads(out.read_text())
    assert doc["num_actions"] == 100 and doc["percentiles"] == [2.5, 97.5]
    contract = load_bundle_files(run_dir).contract
    bounds = resolve_bounds(BoundsConfig(method="ppo_percentile", source=str(out)), contract)
    assert bounds.low == tuple(doc["low"]) and bounds.high == tuple(doc["high"])
    # actions are clipped to the joint-limit bounds PPO trained with (a joint stuck at a bound widens by 0.05)
    limits = joint_limit_bounds(contract)
    assert all(lo >= lim - 0.05 - 1e-6 for lo, lim in zip(bounds.low, limits.low, strict=True))
    assert all(hi <= lim + 0.05 + 1e-6 for hi, lim in zip(bounds.high, limits.high, strict=True))
    config = cfgmod.resolve(None, {"timesteps": 1, "bounds.method": "ppo_percentile", "bounds.source": str(out)})
    assert make_contract(config).action_bounds == bounds
