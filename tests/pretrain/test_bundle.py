"""Checkpoint bundles: exact round trip, atomic writes under failure and SIGKILL, verification. Real SB3 models, real
MuJoCo, real files. (Action bounds: test_bounds.py.)"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch as th

from a1_common.bundle import (
    BUFFER_FILE,
    MODEL_FILE,
    BundleError,
    CheckpointDir,
    load_bundle_files,
    replay_buffer_transitions,
)
from a1_contract import ContractError, get_contract
from a1_contract.variants import joint_limit_bounds
from pretrain import config as cfgmod
from pretrain.factory import load_model, make_contract, make_env, make_model, obs_norm_of, wrap_obs_norm

REPO = Path(__file__).resolve().parents[2]
NUM_ENVS = 4
FLAGS = {
    "algo": "sac",
    "timesteps": 1,
    "seed": 0,
    "env.num_envs": NUM_ENVS,
    "offpolicy.net_arch": [32, 32],
    "offpolicy.learning_starts": 50,
    "offpolicy.buffer_size": 5000,
    "offpolicy.batch_size": 64,
    "offpolicy.gradient_steps": 2,
    "offpolicy.policy_delay": 2,
}


class Trainer:
    """A tiny SAC learner and the pieces ``train()`` hands to ``CheckpointDir.save``."""

    def __init__(self, run_dir: Path, **flags: object) -> None:
        th.set_num_threads(1)  # as train() does
        self.config = cfgmod.resolve(None, {**FLAGS, **flags})
        self.contract = make_contract(self.config)
        self.env = wrap_obs_norm(make_env(self.config, self.contract), self.config)
        self.model = make_model(self.config, self.env)
        self.ckpts = CheckpointDir(run_dir, keep=3)

    def learn(self, steps: int) -> None:
        self.model.learn(steps, reset_num_timesteps=self.model.num_timesteps == 0)

    def save(self) -> Path:
        obs_norm = obs_norm_of(self.env, self.contract.obs_dim)
        return self.ckpts.save(self.model, obs_norm, self.contract, self.config.to_yaml(), algo=self.config.algo)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, Path]:
    trainer = Trainer(tmp_path_factory.mktemp("bundle") / "run")
    trainer.learn(200)
    return trainer, trainer.save()


def assert_same_tensors(a: object, b: object, where: str = "") -> None:
    """Equal nested state dicts (tensors compared exactly)."""
    if isinstance(a, th.Tensor):
        assert isinstance(b, th.Tensor) and a.shape == b.shape and th.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def copy_bundle(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    return dest


# ---- round trip ---------------------------------------------------------------------------------
def test_bundle_round_trips_the_learner_exactly(trained: tuple[Trainer, Path]) -> None:
    trainer, bundle = trained
    model, env = trainer.model, trainer.env
    files = load_bundle_files(bundle.parent.parent)  # the run directory resolves through `latest`
    assert files.path == bundle and files.algo == "sac"
    assert files.meta["num_timesteps"] == model.num_timesteps == 200
    assert files.meta["n_updates"] == model._n_updates > 0
    loaded = load_model(files, env=None, device="cpu")

    assert loaded.num_timesteps == model.num_timesteps and loaded._n_updates == model._n_updates
    assert_same_tensors(model.policy.state_dict(), loaded.policy.state_dict(), "policy")
    for net in ("actor", "critic", "critic_target"):
        assert_same_tensors(getattr(model, net).state_dict(), getattr(loaded, net).state_dict(), net)
    assert_same_tensors(model.actor.optimizer.state_dict(), loaded.actor.optimizer.state_dict(), "actor.optimizer")
    assert_same_tensors(model.critic.optimizer.state_dict(), loaded.critic.optimizer.state_dict(), "critic.optimizer")
    assert model.actor.optimizer.state_dict()["state"], "the optimizer has moments to restore"
    assert_same_tensors(model.log_ent_coef.detach(), loaded.log_ent_coef.detach(), "log_ent_coef")
    assert_same_tensors(model.ent_coef_optimizer.state_dict(), loaded.ent_coef_optimizer.state_dict(), "ent_coef_opt")

    src, dst = model.replay_buffer, loaded.replay_buffer
    assert replay_buffer_transitions(dst) == replay_buffer_transitions(src) == 200
    assert (dst.pos, dst.full, dst.buffer_size, dst.n_envs) == (src.pos, src.full, src.buffer_size, src.n_envs)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(dst, name), getattr(src, name), err_msg=name)

    rms = env.obs_rms
    np.testing.assert_array_equal(files.obs_norm.mean, rms.mean)
    np.testing.assert_array_equal(files.obs_norm.var, rms.var)
    assert files.obs_norm.count == rms.count and files.obs_norm.clip_obs == env.clip_obs
    obs = np.random.default_rng(0).normal(size=(5, trainer.contract.obs_dim))
    np.testing.assert_allclose(files.obs_norm.normalize(obs), env.normalize_obs(obs), rtol=1e-5, atol=1e-5)
    assert files.contract.hash == trainer.contract.hash and cfgmod.from_dict(files.config) == trainer.config


# ---- interrupted writes -------------------------------------------------------------------------
def step_dirs(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name != "latest")


def test_failed_write_leaves_the_previous_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    trainer = Trainer(run_dir)
    trainer.learn(60)
    first = trainer.save()
    model = trainer.model

    def partial_zip(path, *args, **kwargs):  # dies halfway through writing model.zip
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    real_savez = np.savez

    def partial_npz(file, *args, **kwargs):  # the replay buffer is the first .npz: disk full there
        file.write(b"PK\x03\x04 half an npz")
        raise OSError(errno.ENOSPC, "No space left on device")

    for fail in ("model", "buffer"):
        trainer.learn(8)
        with monkeypatch.context() as m:
            if fail == "model":
                m.setattr(model, "save", partial_zip)
            else:
                m.setattr(np, "savez", partial_npz)
            with pytest.raises(OSError, match="No space left"):
                trainer.save()
        assert np.savez is real_savez
        assert step_dirs(run_dir) == [first.name], fail  # no step_* and no .tmp-* left behind
        assert os.readlink(run_dir / "checkpoints" / "latest") == first.name
        files = load_bundle_files(run_dir)
        assert files.path == first and files.meta["num_timesteps"] == 60
        assert replay_buffer_transitions(load_model(files, env=None, device="cpu").replay_buffer) == 60

    second = trainer.save()  # the same learner saves fine afterwards
    assert load_bundle_files(run_dir).path == second and step_dirs(run_dir) == [first.name, second.name]


CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_bundle import Trainer

trainer = Trainer(Path(sys.argv[1]))
trainer.learn(60)
print("FIRST", trainer.save().name, flush=True)
trainer.learn(8)
real_save = trainer.model.save

def save_then_hang(path, *args, **kwargs):  # model.zip is in the temporary bundle; the rest is not yet
    real_save(path, *args, **kwargs)
    print("WRITING", flush=True)
    time.sleep(300)

trainer.model.save = save_then_hang
trainer.save()
print("NOT REACHED", flush=True)
"""


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_bundle(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = textwrap.dedent(CHILD).format(tests=str(Path(__file__).parent))
    with open(tmp_path / "child.err", "w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(run_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            lines = []
            for line in child.stdout:
                lines.append(line.split())
                if line.startswith("WRITING"):
                    break
            assert lines and lines[-1] == ["WRITING"], (lines, (tmp_path / "child.err").read_text())
            partial = [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-step_")]
            assert len(partial) == 1 and (partial[0] / MODEL_FILE).is_file()
            assert not (partial[0] / "meta.json").exists()
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    first_name = lines[0][1]

    assert step_dirs(run_dir) == [partial[0].name, first_name]  # the killed write stays hidden
    files = load_bundle_files(run_dir)
    assert files.path.name == first_name and files.meta["num_timesteps"] == 60
    model = load_model(files, env=None, device="cpu")
    assert replay_buffer_transitions(model.replay_buffer) == 60

    # The next successful save clears the leftover of the killed one.
    model.num_timesteps += NUM_ENVS
    contract = files.contract
    CheckpointDir(run_dir).save(model, files.obs_norm, contract, yaml_text(files), algo="sac")
    assert step_dirs(run_dir) == [first_name, f"step_{64:012d}"]


def yaml_text(files) -> str:
    return (files.path / "config.yaml").read_text()


# ---- verification -------------------------------------------------------------------------------
def test_corrupted_or_missing_files_are_named(trained: tuple[Trainer, Path], tmp_path: Path) -> None:
    _, bundle = trained
    flipped = copy_bundle(bundle, tmp_path / "flipped")
    data = bytearray((flipped / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (flipped / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.zip does not match its sha256"):
        load_bundle_files(flipped)

    for name in (BUFFER_FILE, "obs_norm.npz", "contract.json", "config.yaml"):
        missing = copy_bundle(bundle, tmp_path / f"missing-{name}")
        (missing / name).unlink()
        with pytest.raises(BundleError, match=re.escape(f"{name} is missing")):
            load_bundle_files(missing)

    no_meta = copy_bundle(bundle, tmp_path / "no-meta")
    (no_meta / "meta.json").unlink()
    with pytest.raises(BundleError, match="no checkpoint bundle"):
        load_bundle_files(no_meta)

    unlisted = copy_bundle(bundle, tmp_path / "unlisted")
    meta = json.loads((unlisted / "meta.json").read_text())
    del meta["files"][MODEL_FILE]
    (unlisted / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"does not list model\.zip"):
        load_bundle_files(unlisted)
    assert load_bundle_files(bundle).path == bundle  # the original is untouched


def test_bundle_for_another_contract_is_refused_naming_the_field(trained: tuple[Trainer, Path]) -> None:
    trainer, bundle = trained
    bounds = trainer.contract.action_bounds
    assert load_bundle_files(bundle, expect_contract=trainer.contract).contract == trainer.contract
    expected = get_contract("no_base_lin_vel").replace(action_bounds=bounds)
    with pytest.raises(ContractError, match="differing fields: name, obs_dim, obs_terms$"):
        load_bundle_files(bundle, expect_contract=expected)
    other_bounds = trainer.contract.replace(action_bounds=joint_limit_bounds(trainer.contract))
    with pytest.raises(ContractError, match="differing fields: action_bounds$"):
        load_bundle_files(bundle, expect_contract=other_bounds)
