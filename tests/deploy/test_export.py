"""ONNX export: real SB3 bundles, real torch export, real onnxruntime, real files."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch as th
from stable_baselines3 import PPO, SAC

import deploy.export as export_mod
import deploy.parity as parity_mod
from a1_common.bundle import ObsNorm, load_bundle_files
from a1_contract import get_contract
from deploy.export import PARITY_TOLERANCE, ExportError, export_policy
from deploy.metadata import OUTPUT_NAMES, REQUIRED_KEYS
from deploy.policy_module import ExportablePolicy
from deploy.runner import PolicyRunner
from pretrain.reference import REFERENCE_BUNDLE
from pretrain.rollout import BundlePolicy, walk_check
from tests.deploy.conftest import QUICK_PARITY, fresh_bundle


def _obs_around(obs_norm: ObsNorm, count: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    std = np.sqrt(obs_norm.var + obs_norm.epsilon)
    return (obs_norm.mean + 2.0 * std * rng.standard_normal((count, len(std)))).astype(np.float32)


@pytest.mark.parametrize("algo", ["sac", "tqc", "ppo"])
def test_tiny_bundle_exports_with_parity_and_matches_sb3_predict(algo, tiny_bundle, exported):
    path = exported(algo)
    files = load_bundle_files(tiny_bundle(algo))
    runner = PolicyRunner(path, expected_contract=files.contract)
    # Independent of the export's own check: fresh observations, SB3's predict, the contract's rescale.
    obs = _obs_around(files.obs_norm, 256)
    sb3 = BundlePolicy(tiny_bundle(algo))
    expected_raw = files.contract.action_bounds.to_raw(sb3(obs, deterministic=True))
    np.testing.assert_allclose(runner.act(obs), expected_raw, rtol=0, atol=PARITY_TOLERANCE)
    for i in range(4):
        np.testing.assert_allclose(runner.act(obs[i]), expected_raw[i], rtol=0, atol=PARITY_TOLERANCE)

    meta = runner.metadata
    assert set(REQUIRED_KEYS) <= meta.keys()
    assert meta["algo"] == algo and runner.algo == algo
    assert meta["squash"] == ("clip" if algo == "ppo" else "tanh")
    assert meta["contract_hash"] == files.contract.hash == runner.contract.hash
    assert meta["source_bundle_id"] == files.meta["bundle_id"]
    assert json.loads(meta["outputs"]) == list(OUTPUT_NAMES)
    assert json.loads(meta["action_bounds"])["low"] == list(files.contract.action_bounds.low)
    norm = json.loads(meta["obs_norm"])
    np.testing.assert_array_equal(norm["mean"], files.obs_norm.mean)
    np.testing.assert_array_equal(norm["var"], files.obs_norm.var)
    assert norm["clip_obs"] == files.obs_norm.clip_obs and norm["epsilon"] == files.obs_norm.epsilon
    assert float(meta["policy_rate_hz"]) == files.contract.policy_rate_hz == runner.policy_rate_hz == 50.0
    assert {"onnxruntime", "torch", "stable-baselines3"} <= json.loads(meta["versions"]).keys()

    out = runner.outputs(obs)
    if algo == "ppo":  # state-independent log std, broadcast to the batch
        log_std = sb3.model.policy.log_std.detach().numpy()
        np.testing.assert_allclose(out["log_std"], np.broadcast_to(log_std, out["log_std"].shape), atol=1e-6)
        assert json.loads(meta["log_std_range"]) is None
    else:
        assert json.loads(meta["log_std_range"]) == [-20.0, 2.0]
        assert out["log_std"].min() >= -20.0 and out["log_std"].max() <= 2.0

    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_export_cli_writes_a_file_and_prints_parity(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "sub" / "policy.onnx"
    code = export_mod.main([str(tiny_bundle("sac")), "-o", str(out), "--sim-envs", "2", "--sim-steps", "10"])
    assert code == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "sim/sb3_action" in printed and "random/log_std" in printed
    assert [p.name for p in out.parent.iterdir()] == ["policy.onnx"], "no temporary file left behind"


def test_parity_failure_raises_and_keeps_the_previous_file(tiny_bundle, exported, tmp_path, monkeypatch):
    out = tmp_path / "policy.onnx"
    out.write_bytes(exported("sac").read_bytes())
    before = out.read_bytes()
    real = parity_mod._torch_outputs

    def off_by_a_little(module, obs):
        values = real(module, obs)
        values["mean"] = values["mean"] + 1e-4
        return values

    monkeypatch.setattr(parity_mod, "_torch_outputs", off_by_a_little)
    with pytest.raises(ExportError, match="random/mean"):
        export_policy(tiny_bundle("sac"), out, **QUICK_PARITY)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]


def test_sb3_check_catches_a_wrongly_folded_normalization(tiny_bundle, tmp_path, monkeypatch):
    """Torch and onnxruntime agree with each other here; only the comparison with SB3's predict sees it."""

    def shifted(sb3_policy, algo, obs_norm, contract):
        wrong = ObsNorm(obs_norm.mean + 0.01, obs_norm.var, obs_norm.count, obs_norm.clip_obs, obs_norm.epsilon)
        return ExportablePolicy(sb3_policy, algo, wrong, contract)

    monkeypatch.setattr(export_mod, "ExportablePolicy", shifted)
    with pytest.raises(ExportError, match="sb3_action") as info:
        export_policy(tiny_bundle("sac"), tmp_path / "policy.onnx", **QUICK_PARITY)
    assert "random/mean" not in str(info.value)
    assert not (tmp_path / "policy.onnx").exists()


def test_interrupted_write_leaves_the_previous_file_intact(tiny_bundle, exported, tmp_path, monkeypatch):
    out = tmp_path / "policy.onnx"
    out.write_bytes(exported("sac").read_bytes())
    before = out.read_bytes()

    def killed_half_way(path, **kwargs):  # the process dies with half of the new file written
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(export_mod, "PolicyRunner", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        export_policy(tiny_bundle("sac"), out, **QUICK_PARITY)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["policy.onnx"]
    PolicyRunner(out)  # still loads


def test_a_bundle_without_obs_normalization_exports_without_a_clip(tmp_path):
    contract = get_contract()
    bundle = fresh_bundle(tmp_path / "bundle", contract, "tqc", obs_norm=ObsNorm.identity(contract.obs_dim))
    report = export_policy(bundle, tmp_path / "policy.onnx", **QUICK_PARITY)
    assert max(report.errors.values()) <= PARITY_TOLERANCE
    runner = PolicyRunner(report.path)
    assert json.loads(runner.metadata["obs_norm"])["clip_obs"] is None
    ops = {node.op_type for node in onnx.load(str(report.path)).graph.node}
    assert "Clip" in ops  # the log-std clamp; the observation is not clipped
    far = np.full(contract.obs_dim, 1e3, np.float32)
    policy = BundlePolicy(bundle)
    np.testing.assert_allclose(runner.act(far), contract.action_bounds.to_raw(policy(far[None])[0]), atol=1e-5)


@pytest.mark.parametrize("algo_cls", [SAC, PPO])
def test_gsde_policies_are_refused_with_a_clear_error(algo_cls):
    from a1_common.sim.mujoco_vec_env import A1MujocoVecEnv

    contract = get_contract()
    env = A1MujocoVecEnv(1, contract, seed=0, num_threads=1)
    kwargs = {"buffer_size": 100} if algo_cls is SAC else {"n_steps": 8, "batch_size": 8}
    model = algo_cls("MlpPolicy", env, use_sde=True, policy_kwargs={"net_arch": [8]}, device="cpu", **kwargs)
    env.close()
    algo = "sac" if algo_cls is SAC else "ppo"
    with pytest.raises(ExportError, match="gSDE"):
        ExportablePolicy(model.policy, algo, ObsNorm.identity(contract.obs_dim), contract)


def test_module_folds_normalization_squash_and_bounds_like_the_contract(tiny_bundle):
    """The torch module alone, step by step, against numpy and the contract."""
    policy = BundlePolicy(tiny_bundle("tqc"))
    files = policy.files
    module = ExportablePolicy(policy.model.policy, "tqc", files.obs_norm, files.contract)
    obs = _obs_around(files.obs_norm, 64)
    obs[0, :] = files.obs_norm.mean + 1e3  # far outside: the clip must hold
    with th.no_grad():
        action, mean, log_std = (t.numpy() for t in module(th.as_tensor(obs)))
        normalized = th.as_tensor(files.obs_norm.normalize(obs.astype(np.float64)), dtype=th.float32)
        sb3_mean, sb3_log_std, _ = policy.model.policy.actor.get_action_dist_params(normalized)
    np.testing.assert_allclose(mean, sb3_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(log_std, sb3_log_std.numpy(), atol=1e-6)
    np.testing.assert_allclose(action, files.contract.action_bounds.to_raw(np.tanh(mean)), atol=1e-5)


@pytest.mark.slow
def test_reference_policy_exports_and_walks_through_the_runner(tmp_path):
    """The loop the robot will run (file -> numpy/onnxruntime runner -> simulator) is the bundle's own, and walks."""
    files = load_bundle_files(REFERENCE_BUNDLE)
    report = export_policy(REFERENCE_BUNDLE, tmp_path / "policy.onnx")  # full parity: 8 robots x 200 steps
    assert report.num_sim_obs == 1600
    assert max(report.errors.values()) <= PARITY_TOLERANCE, report.describe()
    runner = PolicyRunner(report.path, expected_contract=files.contract)
    bounds = runner.contract.action_bounds
    through_runner = walk_check(lambda obs: bounds.to_normalized(runner.act(obs)), runner.contract, num_envs=4, seed=1)
    in_sb3 = walk_check(BundlePolicy(REFERENCE_BUNDLE), files.contract, num_envs=4, seed=1)
    assert through_runner.falls == in_sb3.falls, (through_runner.describe(), in_sb3.describe())
    # Actions agree to ~1e-6; over 500 steps of a gait the contacts amplify that to ~2e-3 m/s.
    assert abs(through_runner.mean_tracking_error - in_sb3.mean_tracking_error) < 0.02
    assert abs(through_runner.mean_forward_speed - in_sb3.mean_forward_speed) < 0.02
    assert through_runner.walks == in_sb3.walks
    assert through_runner.walks, through_runner.describe()
