"""``python -m pretrain train``'s configuration: file, preset and flag precedence, validation, the saved config, the
printed preset, and action bounds clipped to the joint-target limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pretrain import config as cfgmod
from pretrain.train import parse


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
