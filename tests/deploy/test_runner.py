"""The onnxruntime policy runner: contract checks, file checks, input checks, sampling, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from a1_common.bundle import load_bundle_files
from a1_contract import ContractError, get_contract
from deploy import ContractMismatchError, PolicyFileError, PolicyInputError, PolicyRunner, session_options
from tests.deploy.conftest import swapped_joints

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sac_file(exported) -> Path:
    return exported("sac")


@pytest.fixture(scope="module")
def runner(sac_file) -> PolicyRunner:
    return PolicyRunner(sac_file)


def _obs(runner: PolicyRunner, count: int = 8, seed: int = 0) -> np.ndarray:
    norm = json.loads(runner.metadata["obs_norm"])
    rng = np.random.default_rng(seed)
    return (np.asarray(norm["mean"]) + np.sqrt(norm["var"]) * rng.standard_normal((count, len(norm["mean"])))).astype(
        np.float32
    )


def test_single_and_batch_observations_give_the_same_actions(runner):
    obs = _obs(runner)
    batch = runner.act(obs)
    assert batch.shape == (8, 12) and batch.dtype == np.float32
    for i in range(len(obs)):
        single = runner.act(obs[i])
        assert single.shape == (12,)
        np.testing.assert_allclose(single, batch[i], rtol=0, atol=1e-6)  # batch of 1 vs 8: other gemm kernels
        np.testing.assert_array_equal(runner.act(obs[i].astype(np.float64)), single)
        np.testing.assert_array_equal(runner.act(obs[i].tolist()), single)
    first = runner.act(obs[0])
    runner.act(obs[1])
    np.testing.assert_allclose(first, batch[0], rtol=0, atol=1e-6, err_msg="overwritten by the next call")
    out = runner.outputs(obs[0])
    np.testing.assert_array_equal(out["action"], first)
    assert out["mean"].shape == out["log_std"].shape == (12,)
    bounds = runner.contract.action_bounds
    assert np.all(batch >= np.asarray(bounds.low, np.float32)) and np.all(batch <= np.asarray(bounds.high, np.float32))


def test_properties_come_from_the_file(runner, tiny_bundle):
    files = load_bundle_files(tiny_bundle("sac"))
    assert runner.contract.hash == files.contract.hash
    assert runner.algo == "sac" and runner.squash == "tanh" and runner.policy_rate_hz == 50.0
    assert runner.metadata["source_bundle_id"] == files.meta["bundle_id"]


def test_session_is_single_threaded_and_sequential():
    options = session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_refuses_a_policy_without_base_lin_vel_naming_obs_terms(exported_fresh, runner):
    path = exported_fresh("no_base_lin_vel", get_contract("no_base_lin_vel"))
    assert PolicyRunner(path).contract.obs_dim == 45
    with pytest.raises(ContractMismatchError, match="obs_terms") as info:
        PolicyRunner(path, expected_contract=runner.contract)
    assert isinstance(info.value, ContractError)


def test_refuses_a_policy_with_another_joint_order_naming_joint_names(exported_fresh, runner):
    expected = runner.contract
    path = exported_fresh("swapped_joints", swapped_joints(expected, 0, 1))
    with pytest.raises(ContractMismatchError, match="joint_names"):
        PolicyRunner(path, expected_contract=expected)
    PolicyRunner(path, expected_contract=swapped_joints(expected, 0, 1))  # its own contract is accepted


def test_missing_random_and_truncated_files_are_refused(sac_file, tmp_path):
    with pytest.raises(PolicyFileError, match="no policy file"):
        PolicyRunner(tmp_path / "nope.onnx")
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(PolicyFileError, match="not a loadable ONNX model"):
        PolicyRunner(noise)
    truncated = tmp_path / "truncated.onnx"
    data = sac_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(PolicyFileError, match="not a loadable ONNX model"):
        PolicyRunner(truncated)


def _edited(sac_file: Path, dest: Path, **changes: str | None) -> Path:
    """A copy of the policy file with metadata entries replaced (a value of None deletes the key)."""
    model = onnx.load(str(sac_file))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(dest))
    return dest


def test_onnx_without_our_metadata_is_refused(sac_file, tmp_path):
    model = onnx.load(str(sac_file))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(PolicyFileError, match="without this project's policy metadata"):
        PolicyRunner(tmp_path / "bare.onnx")
    with pytest.raises(PolicyFileError, match="missing squash"):
        PolicyRunner(_edited(sac_file, tmp_path / "nosquash.onnx", squash=None))


def test_tampered_metadata_is_refused(sac_file, runner, tmp_path):
    with pytest.raises(PolicyFileError, match="contract_hash"):
        PolicyRunner(_edited(sac_file, tmp_path / "hash.onnx", contract_hash="0123456789abcdef"))
    doc = json.loads(runner.metadata["contract"])
    doc["kp"] = {name: 30.0 for name in doc["kp"]}  # edited content, old hash kept
    with pytest.raises(PolicyFileError, match="embedded contract is invalid"):
        PolicyRunner(_edited(sac_file, tmp_path / "kp.onnx", contract=json.dumps(doc)))
    with pytest.raises(PolicyFileError, match="version"):
        PolicyRunner(_edited(sac_file, tmp_path / "v.onnx", format_version="99"))
    with pytest.raises(PolicyFileError, match="squash"):
        PolicyRunner(_edited(sac_file, tmp_path / "sq.onnx", squash="clip"))
    bounds = json.loads(runner.metadata["action_bounds"])
    bounds["low"][0] -= 1.0
    with pytest.raises(PolicyFileError, match="action_bounds"):
        PolicyRunner(_edited(sac_file, tmp_path / "b.onnx", action_bounds=json.dumps(bounds)))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_non_finite_observations_are_refused_naming_the_terms(runner):
    obs = _obs(runner, 4)
    single = obs[0].copy()
    single[3] = np.nan  # base_ang_vel[0] in the default layout
    for call in (runner.act, runner.outputs, lambda o: runner.sample(o, np.random.default_rng(0))):
        with pytest.raises(PolicyInputError, match=r"row 0 base_ang_vel\[0\]"):
            call(single)
    obs[2, -1] = np.inf
    with pytest.raises(PolicyInputError, match=r"row 2 actions\[11\]"):
        runner.act(obs)
    huge = obs[0].astype(np.float64)
    huge[0] = 1e300  # finite in float64, inf in the float32 the network sees
    with pytest.raises(PolicyInputError, match=r"base_lin_vel\[0\]"):
        runner.act(huge)
    runner.act(_obs(runner, 1)[0])  # the buffer left behind by a refused call does not poison the next one


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(47, np.float32), r"got \(47,\)"),
        (np.zeros((2, 3, 48), np.float32), r"got \(2, 3, 48\)"),
        (np.zeros((48, 1), np.float32), r"got \(48, 1\)"),
        (np.zeros(48, np.int64), "got int64"),
        (np.zeros(48, np.float16), "got float16"),
        (np.array(["a"] * 48), "got <U1"),
    ],
)
def test_wrong_shapes_and_dtypes_are_refused(runner, bad, message):
    with pytest.raises(PolicyInputError, match=message):
        runner.act(bad)
    with pytest.raises(PolicyInputError, match="float32 or float64|shape must be"):
        runner.sample(bad, np.random.default_rng(0))


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_samples_stay_in_bounds_and_follow_the_gaussian(algo, exported, exported_fresh):
    runner = PolicyRunner(exported(algo))
    bounds = runner.contract.action_bounds
    obs = np.tile(_obs(runner, 1)[0], (4000, 1))
    raw, normalized = runner.sample(obs, np.random.default_rng(0))
    assert raw.shape == normalized.shape == (4000, 12)
    assert np.all(np.abs(normalized) <= 1.0)
    np.testing.assert_allclose(raw, bounds.to_raw(normalized), atol=1e-5)
    again, _ = runner.sample(obs, np.random.default_rng(0))
    np.testing.assert_array_equal(raw, again)
    out = runner.outputs(obs[0])
    std = np.exp(out["log_std"])
    if algo == "sac":  # atanh(normalized) is the Gaussian draw: mean and std as the file says
        draws = np.arctanh(np.clip(normalized.astype(np.float64), -1 + 1e-7, 1 - 1e-7))
        np.testing.assert_allclose(draws.mean(axis=0), out["mean"], atol=4 * std.max() / np.sqrt(4000) + 1e-3)
        np.testing.assert_allclose(draws.std(axis=0), std, rtol=0.08)
    else:  # PPO: clip(mean + std * eps); inside the clip the draw is visible directly
        inside = np.abs(normalized) < 1.0
        assert inside.mean() > 0.2
        assert np.all(normalized[~inside] == np.sign(normalized[~inside]))


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_sample_mean_is_the_deterministic_action_for_a_small_std(algo, exported_fresh):
    runner = PolicyRunner(exported_fresh(f"small_std_{algo}", algo=algo, log_std=-6.0))
    obs = _obs(runner, 3)
    for row in obs:
        raw, _ = runner.sample(np.tile(row, (2000, 1)), np.random.default_rng(1))
        width = np.asarray(runner.contract.action_bounds.high) - np.asarray(runner.contract.action_bounds.low)
        np.testing.assert_allclose(raw.mean(axis=0), runner.act(row), atol=1e-3 * width.max())
        single_raw, single_normalized = runner.sample(row, np.random.default_rng(2))
        assert single_raw.shape == single_normalized.shape == (12,)


def test_runner_imports_and_runs_with_torch_blocked(sac_file):
    code = f"""
import sys
BLOCKED = ("torch", "stable_baselines3", "sb3_contrib", "pretrain", "onnx", "mujoco")
for name in BLOCKED:
    sys.modules[name] = None  # any import of these now raises ImportError
import numpy as np
import deploy
from deploy.runner import PolicyRunner
runner = PolicyRunner({str(sac_file)!r})
action = runner.act(np.zeros(runner.contract.obs_dim, np.float32))
assert action.shape == (12,), action.shape
loaded = {{n for n in BLOCKED if sys.modules.get(n)}}
assert not loaded, loaded
print("ok", runner.algo)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok sac"
