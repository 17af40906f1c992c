"""``python -m pretrain train`` end to end: real SB3 learners on the real MuJoCo env, real run directories.

Runs are tiny (4 robots, [32, 32] networks, a few hundred transitions) and shared through a session-scoped
cache (``tests/pretrain/conftest.py``), so one SAC run serves the end-to-end, resume and CLI tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from a1_common.bundle import BUFFER_FILE, load_bundle_files, replay_buffer_transitions
from pretrain import config as cfgmod
from pretrain.factory import load_model, make_contract, make_env, make_model, wrap_obs_norm
from pretrain.train import parse, train
from tests.pretrain.conftest import NUM_ENVS, STEPS, Runs, copy_run, read_csv_rows, tiny_flags


# ---- every algorithm, end to end -----------------------------------------------------------------
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


# ---- resume --------------------------------------------------------------------------------------
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


# ---- time-outs bootstrap, falls do not -----------------------------------------------------------
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


# ---- the run directory and the end of a run ------------------------------------------------------
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
