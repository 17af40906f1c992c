"""Every console script meets a bad input the way a user expects: a non-zero exit, a short message on stderr
that names the offending flag, file or value, and no traceback (A1_DEBUG=1 brings it back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _script(name: str) -> list[str]:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        assert found, f"console script {name} is not installed (pip install -e .)"
        path = Path(found)
    return [str(path)]


def _files(tmp: Path) -> dict[str, str]:
    (tmp / "typo.yaml").write_text("algo: sac\nenv:\n  num_envz: 4\n")
    (tmp / "wrong_type.yaml").write_text("env:\n  num_envs: many\n")
    (tmp / "broken.yaml").write_text("algo: sac\nenv: {num_envs: 4\n")
    (tmp / "empty_dir").mkdir()
    (tmp / "corrupt").mkdir()
    (tmp / "corrupt" / "meta.json").write_text("{not json")
    (tmp / "used_run").mkdir()
    (tmp / "used_run" / "curve.csv").write_text("time_s,timesteps\n")
    (tmp / "text.onnx").write_text("this is not an ONNX model\n")
    names = ("typo.yaml", "wrong_type.yaml", "broken.yaml", "empty_dir", "corrupt", "used_run", "text.onnx")
    return {name.split(".")[0]: str(tmp / name) for name in names}


# (console script or module, arguments with {file} placeholders, text the message must contain, exit status)
CASES = [
    ("a1-pretrain", ["--num-envs", "0", "--minutes", "1"], "num_envs", 2),
    ("a1-pretrain", ["--minutes", "-1"], "-1", 2),
    ("a1-pretrain", ["--algo", "sacc", "--minutes", "1"], "sacc", 2),
    ("a1-pretrain", ["--bounds.method", "nonsense", "--minutes", "1"], "nonsense", 2),
    ("a1-pretrain", ["--config", "{typo}", "--minutes", "1"], "num_envz", 2),
    ("a1-pretrain", ["--config", "{wrong_type}", "--minutes", "1"], "many", 2),
    ("a1-pretrain", ["--config", "{broken}", "--minutes", "1"], "broken.yaml", 2),
    ("a1-pretrain", ["--config", "/no/such/config.yaml", "--minutes", "1"], "/no/such/config.yaml", 2),
    ("a1-pretrain", ["--timestep", "5"], "--timestep", 2),
    ("a1-pretrain", ["--minutes", "1", "--out", "{used_run}"], "used_run", 2),
    ("a1-pretrain", ["--resume", "{empty_dir}", "--minutes", "1"], "empty_dir", 2),
    ("a1-pretrain", ["--resume", "{corrupt}", "--minutes", "1"], "meta.json", 2),
    ("a1-export", ["/no/such/bundle"], "/no/such/bundle", 1),
    ("a1-export", ["{empty_dir}"], "empty_dir", 1),
    ("a1-export", ["{corrupt}"], "meta.json", 1),
    ("pretrain", ["walk", "{empty_dir}", "--seconds", "0"], "--seconds", 2),
    ("pretrain", ["evaluate", "{empty_dir}", "--robots", "0"], "--robots", 2),
    ("pretrain", ["play", "{corrupt}"], "meta.json", 1),
    ("pretrain", ["play", "{empty_dir}", "--sequence", "3:fast"], "3:fast", 2),
    ("pretrain", ["reference", "{empty_dir}"], "--dest", 2),
    ("robot-bridge-emulated", ["--policy", "{text}", "--seconds", "1"], "text.onnx", 1),
    ("robot-bridge-emulated", ["--policy", "{text}", "--seconds", "0"], "--seconds", 2),
    ("a1-finetune-learner", ["--bundle", "{empty_dir}", "--keys", "/no/keys"], "/no/keys", 2),
    ("a1-finetune-learner", ["--bundle", "{empty_dir}", "--endpoint", "bogus"], "bogus", 2),
    ("a1-finetune-learner", ["--bundle", "{empty_dir}", "--minutes", "-1"], "--minutes", 2),
    ("a1-pipeline", ["--minutes", "0"], "--minutes", 2),
]


def _ids() -> list[str]:
    return [f"{name}-{'_'.join(a.strip('{}-/') for a in args)[:40]}" for name, args, _, _ in CASES]


@pytest.mark.parametrize(("name", "args", "needle", "status"), CASES, ids=_ids())
def test_bad_input_is_one_line_without_traceback(tmp_path, name, args, needle, status):
    files = _files(tmp_path)
    argv = [a.format(**files) for a in args]
    cmd = [sys.executable, "-m", "pretrain", *argv] if name == "pretrain" else [*_script(name), *argv]
    env = {**os.environ, "A1_DEBUG": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    ours = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("[")]  # not ROS logs
    assert res.returncode == status, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr + res.stdout, res.stderr[-3000:]
    assert 1 <= len(ours) <= 3, res.stderr
    assert any(needle in line for line in ours), (needle, ours)


def test_debug_switch_brings_the_traceback_back(tmp_path):
    env = {**os.environ, "A1_DEBUG": "1"}
    res = subprocess.run([*_script("a1-export"), str(tmp_path / "missing")], capture_output=True, text=True,
                         timeout=120, env=env)  # fmt: skip
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_help_shows_field_docs_and_choices():
    res = subprocess.run([*_script("a1-pretrain"), "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "Robots simulated in parallel" in text  # the field's docstring
    assert "{isaaclab3,symmetric,explicit,ppo_percentile,joint_limits}" in text
    assert "--offpolicy.net-arch [X,...]" in text and "--torch-threads" in text
