"""Tiny training runs the ``python -m pretrain train`` tests share (test_train*.py): one per algorithm, trained on
first use and kept for the session."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from pretrain import config as cfgmod

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
            from pretrain.train import train  # torch + SB3: only where a run is trained

            out = self.root / algo
            config = cfgmod.resolve(None, tiny_flags(algo, out))
            summary = train(config, progress=False)
            self.runs[algo] = (out, config, summary)
        return self.runs[algo]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("runs"))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def copy_run(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest, symlinks=True)
    return dest
