"""``python -m pretrain train`` end to end: real SB3 learners on the real MuJoCo env, real run directories.

Runs are tiny (4 robots, [32, 32] networks, a few hundred transitions) and shared through a
module-scoped cache, so one SAC run serves the end-to-end, resume and CLI tests.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from a1_common.bundle import BUFFER_FILE, load_bundle_files, replay_buffer_transitions
from a1_contract.variants import joint_limit_bounds
from pretrain import config as cfgmod
from pretrain.bounds import resolve_bounds
from pretrain.config import BoundsConfig
from pretrain.factory import load_model, make_contract, make_env, make_model, wrap_obs_norm
from pretrain.train import parse, train

REPO = Path(__file__).resolve().parents[2]
NUM_ENVS = 4
STEPS = 200  # transitions: 50 vector steps of 4 robots


def tiny_flags(algo: str, out: Path, **extra: object) -> dict[str, object]:
    """Flat dotted flags for a run of a few seconds. Joint-limit bounds make random actions fall within
    ~15 policy steps, so episodes finish and the learning curve gets rows."""
    flags: dict[str, object] = {
        "algo": algo,
        "out": str(out),
        "timesteps": STEPS,
        "seed": 0,
        "checkpoint_minutes": 0,
        "log_every_s": 0.0,
        "env.num_envs": NUM_ENVS,
        "bounds.method": "joint_limits",
        "offpolicy.net_arch": [32, 32],
        "offpolicy.learning_starts": 50,
        "offpolicy.buffer_size": 5000,
        "offpolicy.batch_size": 64,
        "offpolicy.gradient_steps": 1,
        "ppo.n_steps": 16,
        "ppo.net_arch": [32, 32],
        "ppo.n_epochs": 1,
    }
    flags.update(extra)
    return flags


class Runs:
    """One tiny training run per algorithm, trained on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: dict[str, tuple[Path, cfgmod.TrainConfig, dict]] = {}

    def get(self, algo: str) -> tuple[Path, cfgmod.TrainConfig, dict]:
        if algo not in self.runs:
            out = self.root / algo
            config = cfgmod.resolve(None, tiny_flags(algo, out))
            summary = train(config, progress=False)
            self.runs[algo] = (out, config, summary)
        return self.runs[algo]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("runs"))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- 1. every algorithm, end to end ---------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:action bounds")  # untrained policies saturate the bounds
@pytest.mark.parametrize("algo", ["sac", "tqc", "ppo"])
def test_training_writes_a_complete_run_and_a_loadable_bundle(runs: Runs, algo: str) -> None:
    run_dir, config, summary = runs.get(algo)
    files = load_bundle_files(run_dir)
    assert files.path == (run_dir / "checkpoints" / "latest").resolve()
    assert files.path.name == f"step_{STEPS:012d}"
    assert files.algo == algo
    assert files.meta["num_timesteps"] >= STEPS
    assert files.contract.hash == files.meta["contract_hash"] == make_contract(config).hash
    assert files.contract.action_bounds.method == "joint_limits_clip"
    assert cfgmod.from_dict(files.config) == config

    model = load_model(files, env=None, device="cpu")
    assert model.num_timesteps == files.meta["num_timesteps"]
    if algo == "ppo":
        assert not files.has_replay_buffer and not (files.path / BUFFER_FILE).exists()
    else:
        assert files.has_replay_buffer
        assert model._n_updates == files.meta["n_updates"] > 0
        assert replay_buffer_transitions(model.replay_buffer) == model.num_timesteps
        with np.load(files.path / BUFFER_FILE, allow_pickle=False) as z:
            assert z["observations"].shape == (model.num_timesteps // NUM_ENVS, NUM_ENVS, files.contract.obs_dim)
    assert files.obs_norm.count > model.num_timesteps  # updated on every observation (reset included)

    assert summary == json.loads((run_dir / "summary.json").read_text())
    assert summary["num_timesteps"] == files.meta["num_timesteps"]
    assert summary["stop_reason"] == "timesteps"
    assert Path(summary["final_bundle"]) == files.path
    assert summary["action_usage"]["summary"]["mean_used_fraction"] > 0

    rows = read_csv_rows(run_dir / "curve.csv")
    assert rows, "episodes (falls) finished, so the curve has rows"
    assert all(0 < int(r["timesteps"]) <= files.meta["num_timesteps"] for r in rows)
    assert all(np.isfinite(float(r["ep_return"])) for r in rows)
    for png in ("learning_curve.png", "reward_terms.png", "actions.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert list((run_dir / "tb").rglob("events.out.tfevents*")), "TensorBoard events"
    saved = cfgmod.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    assert saved == config


# ---- 2. resume ----------------------------------------------------------------------------------
def copy_run(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest, symlinks=True)
    return dest


def test_resume_continues_steps_buffer_updates_and_obs_norm(runs: Runs, tmp_path: Path) -> None:
    original, _, _ = runs.get("sac")
    run_dir = copy_run(original, tmp_path / "run")
    first = load_bundle_files(run_dir)
    before = load_model(first, env=None, device="cpu")
    assert before.num_timesteps == STEPS

    config, args = parse(["--resume", str(run_dir), "--timesteps", "100", "--out", str(run_dir)])
    assert args.resume == str(run_dir)
    assert config.timesteps == 100 and config.out == str(run_dir)
    saved = cfgmod.from_dict(first.config)
    assert config.offpolicy == saved.offpolicy and config.env == saved.env and config.bounds == saved.bounds

    summary = train(config, resume=args.resume, progress=False)
    assert summary["num_timesteps"] == STEPS + 100
    second = load_bundle_files(run_dir)
    assert second.path.name == f"step_{STEPS + 100:012d}"
    assert first.path.is_dir(), "keep_checkpoints=2 keeps the bundle resumed from"
    after = load_model(second, env=None, device="cpu")
    assert after.num_timesteps == STEPS + 100
    assert after._n_updates > before._n_updates
    new = after.num_timesteps - before.num_timesteps
    grown = replay_buffer_transitions(after.replay_buffer) - replay_buffer_transitions(before.replay_buffer)
    assert grown == new == 100
    rows = before.replay_buffer.pos
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(
            getattr(after.replay_buffer, name)[:rows], getattr(before.replay_buffer, name)[:rows], err_msg=name
        )
    # The observation statistics continue (never reset): one update per transition, plus the env's reset.
    assert second.obs_norm.count == pytest.approx(first.obs_norm.count + new + NUM_ENVS)
    assert second.meta["train_time_s"] > first.meta["train_time_s"]
    # The resumed env starts afresh (SB3's load(force_reset=True)), so its first transition does not
    # continue from the observation pickled in model.zip.
    continuing = ~before.replay_buffer.dones[rows - 1].astype(bool)
    assert continuing.any()
    stale = before.replay_buffer.next_observations[rows - 1, continuing]
    assert not np.array_equal(after.replay_buffer.observations[rows, continuing], stale)
    curve_steps = [int(r["timesteps"]) for r in read_csv_rows(run_dir / "curve.csv")]
    assert curve_steps == sorted(curve_steps) and curve_steps[-1] > STEPS, "the resumed run appends to the curve"


def test_resume_refuses_changed_hyperparameters(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, _, _ = runs.get("sac")
    for flag, value in (("--offpolicy.batch_size", "128"), ("--seed", "3"), ("--num-envs", "8")):
        with pytest.raises(SystemExit) as exc:
            parse(["--resume", str(run_dir), "--timesteps", "100", flag, value])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "continues the saved config" in err and flag.lstrip("-").replace("num-envs", "env.num_envs") in err


# ---- 5. time-outs bootstrap, falls do not ---------------------------------------------------------
class RawStepRecorder:
    """Keeps what the raw env returned at each vector step (VecNormalize rewrites its infos in place)."""

    def __init__(self, venv) -> None:
        self.venv = venv
        self.steps: list[tuple[np.ndarray, np.ndarray, list[dict]]] = []
        original = venv.step_wait

        def step_wait():
            obs, rewards, dones, infos = original()
            kept = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in info.items()} for info in infos]
            self.steps.append((obs.copy(), dones.copy(), kept))
            return obs, rewards, dones, infos

        venv.step_wait = step_wait


def test_time_limit_transitions_bootstrap_and_falls_terminate(tmp_path: Path) -> None:
    flags = tiny_flags("sac", tmp_path, **{"env.randomize": False, "clip_obs": 1e6})
    flags["offpolicy.learning_starts"] = 1000  # uniform random actions: with joint-limit bounds, some robots fall
    config = cfgmod.resolve(None, flags)
    contract = make_contract(config).replace(episode_length_s=0.3)
    assert contract.max_episode_steps == 15
    raw = make_env(config, contract)
    recorder = RawStepRecorder(raw)
    env = wrap_obs_norm(raw, config)
    model = make_model(config, env)
    model.learn(total_timesteps=60 * NUM_ENVS)
    buffer, vecnorm = model.replay_buffer, model.get_vec_normalize_env()
    assert buffer.pos == len(recorder.steps) == 60

    timeouts, falls = [], []
    for row, (obs_after_reset, dones, infos) in enumerate(recorder.steps):
        for i in np.flatnonzero(dones):
            (timeouts if infos[i]["TimeLimit.truncated"] else falls).append((row, i))
            terminal = infos[i]["terminal_observation"]
            np.testing.assert_allclose(buffer.next_observations[row, i], terminal, rtol=1e-5, atol=1e-5)
            assert not np.allclose(buffer.next_observations[row, i], obs_after_reset[i], atol=1e-3)
    assert len(timeouts) >= 4, "robots that did not fall reached the 15-step limit"
    for row, i in timeouts:
        assert buffer.dones[row, i] == 1 and buffer.timeouts[row, i] == 1
    for row, i in falls:
        assert buffer.dones[row, i] == 1 and buffer.timeouts[row, i] == 0
    not_done = [(r, i) for r in range(buffer.pos) for i in range(NUM_ENVS) if not recorder.steps[r][1][i]]
    assert all(buffer.dones[r, i] == 0 for r, i in not_done)

    # What the learner sees: SB3's _get_samples draws the env column with np.random, so replay the draw.
    picks = [pick for pick in timeouts + falls for _ in range(8)]
    rows = np.array([row for row, _ in picks])
    np.random.seed(123)
    env_index = np.random.randint(0, NUM_ENVS, size=len(rows))
    np.random.seed(123)
    samples = buffer._get_samples(rows, env=vecnorm)
    checked = set()
    for k, (row, i) in enumerate(picks):
        j = env_index[k]
        expected_done = float(buffer.dones[row, j] * (1 - buffer.timeouts[row, j]))
        assert float(samples.dones[k, 0]) == expected_done
        np.testing.assert_allclose(samples.observations[k].numpy(), vecnorm.normalize_obs(buffer.observations[row, j]))
        if j == i:
            checked.add((row, i))
            assert float(samples.dones[k, 0]) == (0.0 if (row, i) in timeouts else 1.0)
            terminal = vecnorm.normalize_obs(recorder.steps[row][2][i]["terminal_observation"])
            np.testing.assert_allclose(samples.next_observations[k].numpy(), terminal, rtol=1e-3, atol=1e-3)
    assert checked & set(timeouts), "the replayed draw sampled a time-out transition"
    assert not falls or checked & set(falls), "the replayed draw sampled a fall"
    if not falls:
        pytest.skip("no robot fell in this run; the termination half was not exercised")


# ---- 6. configuration -----------------------------------------------------------------------------
def test_yaml_file_and_flags_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    file_doc = {
        "preset": "sac_raffin_a1",
        "env": {"num_envs": 8},
        "offpolicy": {"batch_size": 128, "gamma": 0.9},
        "seed": 5,
    }
    path.write_text(yaml.safe_dump(file_doc))
    config, _ = parse(["--config", str(path), "--offpolicy.batch_size", "32", "--seed", "7", "--timesteps", "10"])
    defaults, preset = cfgmod.TrainConfig(), cfgmod.preset("sac_raffin_a1")
    assert config.preset == "sac_raffin_a1" and config.timesteps == 10
    assert config.offpolicy.batch_size == 32  # flag beats file (and preset: 512)
    assert config.seed == 7  # short flag beats file
    assert config.offpolicy.gamma == 0.9  # file beats preset (0.9831)
    assert config.env.num_envs == 8  # file beats preset (1024)
    assert config.offpolicy.net_arch == [512, 256, 128] != defaults.offpolicy.net_arch  # preset beats defaults
    assert config.offpolicy.policy_delay == preset.offpolicy.policy_delay == 8
    assert config.offpolicy.n_critics == defaults.offpolicy.n_critics  # untouched: the default
    # --preset on the command line replaces the file's preset; the file still applies on top of it
    config, _ = parse(["--config", str(path), "--preset", "ppo_wide", "--minutes", "1"])
    assert config.preset == "ppo_wide" and config.algo == "ppo" and config.bounds.method == "symmetric"
    assert config.offpolicy.batch_size == 128 and config.env.num_envs == 8
    assert config.offpolicy.gradient_steps == defaults.offpolicy.gradient_steps


def test_unknown_keys_and_wrong_types_are_named() -> None:
    with pytest.raises(ValueError, match=r"'offpolicy\.batchsize'"):
        cfgmod.resolve({"offpolicy": {"batchsize": 1}}, {"timesteps": 1})
    with pytest.raises(ValueError, match=r"'envv'"):
        cfgmod.resolve({"envv": {"num_envs": 1}}, {})
    with pytest.raises(ValueError, match=r"'offpolicy\.batch_size' expects an integer, got 'big'"):
        cfgmod.resolve(None, {"offpolicy.batch_size": "big"})
    with pytest.raises(ValueError, match=r"'offpolicy\.batch_size' expects an integer, got 1.5"):
        cfgmod.resolve(None, {"offpolicy.batch_size": 1.5})
    with pytest.raises(ValueError, match=r"'normalize_obs' expects true/false"):
        cfgmod.resolve(None, {"normalize_obs": 1})
    with pytest.raises(ValueError, match=r"'offpolicy\.net_arch' expects a list"):
        cfgmod.resolve(None, {"offpolicy.net_arch": 64})
    with pytest.raises(ValueError, match=r"'env' is a section"):
        cfgmod.resolve({"env": 3}, {})
    with pytest.raises(ValueError, match=r"algo must be one of"):
        cfgmod.resolve(None, {"algo": "ddpg"})
    with pytest.raises(ValueError, match=r"unknown preset 'nope'"):
        cfgmod.resolve(None, {}, preset_name="nope")
    assert cfgmod.resolve(None, {"offpolicy.batch_size": 64.0}).offpolicy.batch_size == 64


def test_unknown_flag_and_budgetless_run_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["--algo", "sac"])
    assert exc.value.code == 2 and "set a budget" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--timesteps", "10", "--offpolicy.batchsize", "3"])
    assert "--offpolicy.batchsize" in capsys.readouterr().err


def test_saved_config_round_trips(tmp_path: Path) -> None:
    config = cfgmod.resolve(
        None,
        {"timesteps": 5, "bounds.method": "explicit", "bounds.low": [-1] * 12, "bounds.high": [2] * 12},
        preset_name="tqc_raffin_a1",
    )
    doc = yaml.safe_load(config.to_yaml())
    again = cfgmod.from_dict(doc)
    assert again == config
    assert again.offpolicy.gamma == 0.983100250213744 and again.bounds.low == [-1.0] * 12
    assert isinstance(again.bounds.low[0], float) and again.offpolicy.target_entropy is None


def test_print_config_shows_the_published_raffin_values(capsys: pytest.CaptureFixture[str]) -> None:
    from pretrain.__main__ import main

    assert main(["train", "--print-config", "--preset", "sac_raffin_a1"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    off = doc["offpolicy"]
    assert doc["algo"] == "sac" and doc["preset"] == "sac_raffin_a1" and doc["env"]["num_envs"] == 1024
    assert (off["batch_size"], off["gradient_steps"], off["policy_delay"], off["train_freq"]) == (512, 32, 8, 1)
    assert off["gamma"] == pytest.approx(0.9831, abs=1e-4) and off["tau"] == pytest.approx(0.0023, abs=1e-4)
    assert off["learning_rate"] == pytest.approx(4.4689e-4, rel=1e-4)
    assert off["net_arch"] == [512, 256, 128] and off["critic_layer_norm"] is True
    assert off["optimizer"] == "adamw" and off["weight_decay"] == 1e-4 and off["activation"] == "elu"
    assert off["ent_coef"].startswith("auto_0.0094") and off["buffer_size"] == 2_000_000
    assert doc["bounds"]["method"] == "ppo_percentile"


# ---- 7. the other CLI tools on a tiny bundle ------------------------------------------------------
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


def test_resume_may_change_budget_and_machine_settings(runs: Runs) -> None:
    run_dir, _, _ = runs.get("sac")
    config, _ = parse(["--resume", str(run_dir), "--minutes", "2", "--torch_threads", "2", "--env.threads", "2"])
    assert (config.minutes, config.torch_threads, config.env.threads) == (2.0, 2, 2)
    assert config.offpolicy == cfgmod.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text())).offpolicy


def test_resume_from_a_bundle_without_buffer_refills_before_updating(runs: Runs, tmp_path: Path) -> None:
    """The committed reference has no replay buffer: training continues from it after fresh steps."""
    from pretrain.reference import copy_without_buffer

    original, _, _ = runs.get("sac")
    small = copy_without_buffer(original, tmp_path / "reference")
    updates_before = int(load_bundle_files(small).meta["n_updates"])
    config, _ = parse(["--resume", str(small), "--timesteps", "40", "--out", str(tmp_path / "continued")])
    config.offpolicy.learning_starts = 1000  # not a config change on disk: only to see that no update runs
    train(config, resume=str(small), progress=False)
    after = load_bundle_files(tmp_path / "continued")
    assert after.meta["num_timesteps"] >= STEPS + 40
    assert after.meta["n_updates"] == updates_before, "no gradient step on a nearly empty buffer"
    assert after.has_replay_buffer and after.meta["num_timesteps"] - STEPS == 40


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


def test_resume_may_switch_randomization_and_noise_on_as_a_curriculum(runs: Runs) -> None:
    run_dir, _, _ = runs.get("sac")
    config, _ = parse(
        ["--resume", str(run_dir), "--minutes", "1", "--env.randomize", "false", "--env.obs_noise", "false"]
    )
    assert (config.env.randomize, config.env.obs_noise) == (False, False)
    assert config.offpolicy == cfgmod.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text())).offpolicy


def test_actuation_latency_is_a_range_in_seconds_drawn_per_robot(runs: Runs) -> None:
    config, _ = parse(["--minutes", "1", "--env.action_latency_s", "[0, 0.04]", "--num-envs", "4"])
    contract = make_contract(config)
    env = make_env(config, contract)
    assert env.action_delay_range == (0, 2 * contract.decimation)
    config.env.action_latency_s = [0.0, 0.1]
    with pytest.raises(ValueError, match="env.action_latency_s .* two policy steps"):
        make_env(config, contract)
    with pytest.raises(SystemExit):
        parse(["--minutes", "1", "--env.action_latency_s", "[0.02, 0.01]"])
    run_dir, _, _ = runs.get("sac")
    resumed, _ = parse(["--resume", str(run_dir), "--minutes", "1", "--env.action_latency_s", "[0, 0.02]"])
    assert resumed.env.action_latency_s == [0.0, 0.02]


def test_a_used_run_directory_is_refused_unless_resumed_or_overwritten(tmp_path: Path) -> None:
    from a1_common.cli import UsageError
    from pretrain.train import prepare_run_dir

    run = tmp_path / "run"
    prepare_run_dir(run)  # new: created
    prepare_run_dir(run)  # empty: fine
    (run / "curve.csv").write_text("time_s\n1\n")
    with pytest.raises(UsageError, match="not empty"):
        prepare_run_dir(run)
    with pytest.raises(UsageError, match="not empty"):
        prepare_run_dir(run, resume_run=tmp_path / "other")
    prepare_run_dir(run, resume_run=run)  # continuing that run
    assert (run / "curve.csv").exists()
    prepare_run_dir(run, overwrite=True)
    assert run.is_dir() and not any(run.iterdir())


def test_a_model_without_tensorboard_writes_no_log_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SB3's default logger creates an empty $SB3_LOGDIR (else /tmp/SB3-<time>) on every learn() without TensorBoard.
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3"))
    config, _ = parse(["--timesteps", "64", "--num-envs", "4", "--offpolicy.learning_starts", "16",
                       "--offpolicy.net_arch", "[8]"])  # fmt: skip
    contract = make_contract(config)
    model = make_model(config, wrap_obs_norm(make_env(config, contract), config))
    model.learn(64)
    assert model.num_timesteps >= 64 and model.logger.name_to_value is not None
    assert not (tmp_path / "sb3").exists()


def test_a_sigterm_while_the_run_is_finishing_still_leaves_its_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from pretrain import train as train_module

    real_finish = train_module.finish

    def finish_under_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. a tune worker stopping its trainer during the final plots
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(train_module, "finish", finish_under_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    config, args = parse(["--timesteps", "64", "--num-envs", "4", "--offpolicy.learning_starts", "16",
                          "--offpolicy.net_arch", "[8]", "--out", str(tmp_path / "run")])  # fmt: skip
    train(config, progress=False)
    assert (tmp_path / "run" / "summary.json").exists()
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored once everything is written
