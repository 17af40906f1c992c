"""The training configuration: typed dataclasses, named presets, YAML files and command-line overrides.

Precedence, lowest first: the dataclass defaults, the preset (``--preset`` or ``preset:`` in the file),
the YAML file (``--config``), then command-line flags. Every field has a dotted flag
(``--offpolicy.batch_size 1024``, ``--bounds.method joint_limits``); the common ones also have short
flags (``--algo``, ``--sim``, ``--num-envs``, ``--timesteps``, ``--minutes``, ``--seed``, ``--out``).
The resolved configuration is saved in every run directory and checkpoint (``config.yaml``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from a1_common.cli import field_docs

ALGOS = ("sac", "tqc", "ppo")
SIMS = ("mujoco", "isaaclab")
BOUNDS_METHODS = ("isaaclab3", "symmetric", "explicit", "ppo_percentile", "joint_limits")


@dataclass
class BoundsConfig:
    """How the normalized action [-1, 1] maps to raw actions (see ``pretrain/bounds.py``)."""

    method: str = "ppo_percentile"
    """isaaclab3: Isaac Lab 3.0's [-1, 1]; symmetric: [-width, width]; explicit: ``low``/``high``;
    ppo_percentile: percentiles of a trained PPO policy's actions (``source``: a JSON written by
    ``python -m pretrain bounds``; empty: the seed author's published A1 values); joint_limits: the
    default pose to the URDF joint limits (FastSAC / RSL-RL-SAC)."""
    width: float = 1.0
    """Half-width in raw action units (method ``symmetric``)."""
    low: list[float] | None = None
    """Per-joint lower bounds, raw units, contract joint order (method ``explicit``)."""
    high: list[float] | None = None
    """Per-joint upper bounds (method ``explicit``)."""
    source: str = ""
    """Bounds JSON from ``python -m pretrain bounds`` (method ``ppo_percentile``)."""
    scale: float = 1.0
    """Multiplies the bounds (the seed author used 1.25 on rough terrain)."""
    clip_to_targets: bool = True
    """Intersect the bounds with the contract's joint-target limits (soft joint limits, what the robot's
    safety layer clamps to): no part of the action range is dead or pins a joint against its hard limit."""


@dataclass
class EnvConfig:
    """Which simulator and task."""

    sim: str = "mujoco"
    """mujoco (embedded, runs anywhere) or isaaclab (GPU workstation, ``pip install .[isaaclab]``)."""
    contract: str = "isaaclab3"
    """Contract variant (``a1-contract --list``); the action bounds come from ``bounds``."""
    num_envs: int = 32
    """Robots simulated in parallel."""
    threads: int = 1
    """MuJoCo rollout threads."""
    obs_noise: bool = True
    """Training observation noise from the contract."""
    randomize: bool = True
    """Domain randomization from the contract (mass, COM, friction, reset spread, pushes)."""
    action_latency_s: list[float] = field(default_factory=lambda: [0.0, 0.0])
    """Actuation latency [low, high] (s): each robot's joint targets act that long after its policy step starts,
    drawn per robot at every reset and rounded to physics steps; at most two policy steps. A robot's control
    loop (state -> ROS 2 -> policy -> driver -> motors) is late by a few ms to tens of ms on a busy computer."""
    task_id: str = ""
    """Isaac Lab task id (empty: the contract's)."""
    device: str = "cuda:0"
    """Isaac Lab simulation device."""


@dataclass
class OffPolicyConfig:
    """SAC / TQC settings (SB3 / sb3-contrib names; units noted where SB3's are easy to misread)."""

    learning_rate: float = 1e-3
    buffer_size: int = 2_000_000
    """Replay capacity in transitions (all envs together)."""
    learning_starts: int = 2_000
    """Transitions collected with random actions before the first update."""
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.98
    train_freq: int = 1
    """Vector-env steps between updates (one vector step = num_envs transitions)."""
    gradient_steps: int = 2
    """Gradient steps per update: replay ratio = gradient_steps / (train_freq * num_envs)."""
    ent_coef: str = "auto_0.01"
    """'auto_<initial>' (auto-tuned, small initial value: the seed's fix) or a fixed number."""
    target_entropy: float | None = None
    """None: SB3's default, -action_dim."""
    policy_delay: int = 1
    """Critic updates per actor (and entropy-coefficient) update."""
    n_steps: int = 1
    """n-step returns (SB3's NStepReplayBuffer); 1 = one-step TD."""
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden layers of the actor and of each critic."""
    activation: str = "elu"
    optimizer: str = "adam"
    """adam or adamw."""
    weight_decay: float = 0.0
    """AdamW weight decay (ignored by adam unless set)."""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden layer of the critics."""
    n_critics: int = 2
    n_quantiles: int = 25
    """TQC only."""
    top_quantiles_to_drop_per_net: int = 2
    """TQC only."""
    mirror_fraction: float = 0.0
    """Share of each batch replaced by left-right mirrored transitions (``pretrain/mirror.py``): a symmetric
    gait, turning both ways alike. 0: off."""
    fast_update: bool = True
    """The fast update (``a1_common/algos/fast_update.py``: same maths, no autograd); false: SB3's autograd loop."""
    concurrent_update: bool = False
    """Run each update while the simulator computes the next step (``a1_common/algos/concurrent.py``; mujoco):
    learner and robots on two cores at once. The acting policy lags one update (gradient_steps) behind."""


@dataclass
class PPOConfig:
    """PPO baseline (Isaac Lab's ``sb3_ppo_cfg.yaml`` for the A1 unless noted)."""

    learning_rate: float = 1e-3
    n_steps: int = 24
    """Steps per env per rollout."""
    n_minibatches: int = 4
    """batch_size = n_steps * num_envs / n_minibatches (Isaac Lab's ``process_sb3_cfg``)."""
    n_epochs: int = 5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.005
    vf_coef: float = 1.0
    max_grad_norm: float = 1.0
    net_arch: list[int] = field(default_factory=lambda: [128, 128, 128])
    """Isaac Lab's flat A1 networks (rsl_rl/skrl flat configs); the SB3 file says [512, 256, 128]."""
    activation: str = "elu"
    init_std: float = 1.0
    """Initial Gaussian std in normalized action units."""


@dataclass
class TrainConfig:
    """One training run."""

    algo: str = "sac"
    """sac, tqc or ppo."""
    preset: str = ""
    """Name of the preset this config started from (informational once resolved)."""
    seed: int = 0
    timesteps: int = 0
    """Stop after this many transitions (0: no step limit)."""
    minutes: float = 0.0
    """Stop after this much wall-clock (0: no time limit). One of the two limits must be set."""
    out: str = ""
    """Run directory (empty: runs/<algo>-<date>-<time>)."""
    torch_threads: int = 1
    device: str = "auto"
    """Torch device for the learner."""
    normalize_obs: bool = True
    """Running mean/std observation normalization (SB3 VecNormalize), stored in every bundle."""
    clip_obs: float = 10.0
    checkpoint_minutes: float = 5.0
    """Write a checkpoint bundle this often (and always at the end)."""
    keep_checkpoints: int = 2
    save_replay_buffer: bool = True
    """Store the replay buffer in checkpoints (needed for exact resume and fine-tuning)."""
    bounds_warning_ratio: float = 4.0
    """Warn when a joint's bound width exceeds this multiple of what the policy uses."""
    log_every_s: float = 30.0
    """Seconds between learning-curve rows."""
    env: EnvConfig = field(default_factory=EnvConfig)
    bounds: BoundsConfig = field(default_factory=BoundsConfig)
    offpolicy: OffPolicyConfig = field(default_factory=OffPolicyConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def validate(self) -> TrainConfig:
        problems = []
        if self.algo not in ALGOS:
            problems.append(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.env.sim not in SIMS:
            problems.append(f"env.sim must be one of {SIMS}, got {self.env.sim!r}")
        if self.bounds.method not in BOUNDS_METHODS:
            problems.append(f"bounds.method must be one of {BOUNDS_METHODS}, got {self.bounds.method!r}")
        if self.env.num_envs < 1:
            problems.append(f"env.num_envs must be >= 1, got {self.env.num_envs}")
        latency = self.env.action_latency_s
        if len(latency) != 2 or not 0.0 <= latency[0] <= latency[1] or not math.isfinite(latency[1]):
            problems.append(f"env.action_latency_s must be [low, high] with 0 <= low <= high, got {latency}")
        if self.timesteps < 0 or self.minutes < 0 or not math.isfinite(self.minutes):
            problems.append(f"timesteps and minutes must be >= 0, got {self.timesteps} and {self.minutes}")
        if self.algo == "ppo" and self.env.num_envs * self.ppo.n_steps % self.ppo.n_minibatches:
            problems.append("ppo: n_steps * num_envs must be divisible by n_minibatches")
        if problems:
            raise ValueError("invalid training config:\n  " + "\n  ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---- presets -------------------------------------------------------------------------------------
# Each preset is a partial config (nested dict) applied on top of the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "sac": {
        # For wall-clock on a CPU box (benchmarks/time_to_walk.py, one core): a gradient step of a
        # [256, 256] SAC at batch 256 costs ~20 ms on one core, 100x a robot-step, so small networks,
        # 64 robots per step and 4 critic updates (2 actor updates) per step: replay ratio 1/16.
        "algo": "sac",
        "env": {"num_envs": 64},
        "offpolicy": {"net_arch": [128, 128], "gradient_steps": 4, "policy_delay": 2},
    },
    "sac_raffin_a1": {
        # The seed author's Part II values for A1 flat (OFFPOLICY_ANCHORS.md (a), "Tuned SAC (SBX)"),
        # meant for a GPU workstation with Isaac Lab. Part II ran flat tasks with n_steps=1.
        "algo": "sac",
        "env": {"num_envs": 1024},
        "bounds": {"method": "ppo_percentile"},
        "offpolicy": {
            "batch_size": 512,
            "buffer_size": 2_000_000,
            "ent_coef": "auto_0.009471776840423638",
            "gamma": 0.983100250213744,
            "gradient_steps": 32,
            "learning_rate": 0.00044689099625712413,
            "learning_starts": 2000,
            "policy_delay": 8,
            "tau": 0.0023055560568780655,
            "train_freq": 1,
            "net_arch": [512, 256, 128],
            "activation": "elu",
            "optimizer": "adamw",
            "weight_decay": 1e-4,
            "critic_layer_norm": True,
        },
    },
    "sac_tuned_cpu": {
        # Best of a 24-trial search on this CPU box (2.5 min per trial, nominal, objective: return;
        # benchmarks/results/tune_sac_cpu_nominal/): fewer updates per step than `sac`, [-1, 1] bounds x 1.15.
        "algo": "sac",
        "env": {"num_envs": 64},
        "bounds": {"method": "isaaclab3", "scale": 1.152},
        "offpolicy": {
            "net_arch": [512, 256, 128],
            "gradient_steps": 2,
            "train_freq": 2,
            "policy_delay": 4,
            "learning_rate": 8.76e-4,
            "gamma": 0.9887,
            "tau": 0.0088,
            "ent_coef": "auto_0.0061",
        },
    },
    # Isaac Lab's PPO hyperparameters (PPOConfig defaults); 128 robots per rollout on a CPU box.
    "ppo": {"algo": "ppo", "env": {"num_envs": 128}},
    "ppo_wide": {
        # PPO with wide symmetric bounds, so that `python -m pretrain bounds` measures what PPO wants
        # rather than what the bounds allow (fewer than 0.1% of trained PPO actions exceed +-5).
        "algo": "ppo",
        "bounds": {"method": "symmetric", "width": 5.0},
        "ppo": {"init_std": 0.2},
    },
}
PRESETS["tqc"] = {**PRESETS["sac"], "algo": "tqc"}
PRESETS["tqc_raffin_a1"] = {**PRESETS["sac_raffin_a1"], "algo": "tqc"}
DEFAULT_PRESET = {"sac": "sac", "tqc": "tqc", "ppo": "ppo"}


def merge(config: Any, overrides: dict[str, Any], where: str = "") -> Any:
    """Return ``config`` (a dataclass) with ``overrides`` (nested dict) applied; unknown keys are errors."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        name = f"{where}{key}"
        if key not in fields:
            raise ValueError(f"unknown config field {name!r}; known: {', '.join(sorted(fields))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"config field {name!r} is a section; give a mapping")
            changes[key] = merge(current, value, f"{name}.")
        else:
            changes[key] = _coerce(value, current, fields[key], name)
    return dataclasses.replace(config, **changes)


def _coerce(value: Any, current: Any, f: dataclasses.Field, name: str) -> Any:
    kind = str(f.type)
    if value is None:
        if "None" in kind:
            return None
        raise ValueError(f"config field {name!r} cannot be null")
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"config field {name!r} expects true/false, got {value!r}")
        return value
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"config field {name!r} expects an integer, got {value!r}")
        return int(value)
    if kind.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"config field {name!r} expects a number, got {value!r}")
        return float(value)
    if kind.startswith("str"):
        return str(value)
    if kind.startswith("list"):
        if not isinstance(value, list | tuple):
            raise ValueError(f"config field {name!r} expects a list, got {value!r}")
        return [float(v) if "float" in kind else int(v) for v in value]
    return value


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return merge(TrainConfig(preset=name), PRESETS[name])


def load_yaml(path: str | Path) -> dict[str, Any]:
    text = Path(path).read_text()
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML: {problem}{where}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a config file must be a mapping, got {type(doc).__name__}")
    return doc


def resolve(file_doc: dict[str, Any] | None, flags: dict[str, Any], preset_name: str | None = None) -> TrainConfig:
    """Defaults < preset < file < flags. ``flags`` is a flat dict of dotted names."""
    file_doc = dict(file_doc or {})
    nested = unflatten(flags)
    algo = nested.get("algo") or file_doc.get("algo") or "sac"
    file_preset = file_doc.pop("preset", None)  # always popped: merged below, it would mislabel a --preset run
    name = preset_name or file_preset or DEFAULT_PRESET.get(algo, "sac")
    config = preset(name)
    config = merge(config, file_doc)
    config = merge(config, nested)
    return config.validate()


def unflatten(flags: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flags.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


CHOICES: dict[str, tuple[str, ...]] = {"algo": ALGOS, "env.sim": SIMS, "bounds.method": BOUNDS_METHODS}
"""Dotted fields whose value is one of a few names (shown as choices by ``a1-pretrain --help``)."""


def field_help(config: Any = None, prefix: str = "") -> dict[str, str]:
    """Dotted field name -> its docstring (empty when it has none), for every leaf field of the config."""
    config = config if config is not None else TrainConfig()
    docs = field_docs(type(config))
    out: dict[str, str] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(field_help(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = docs.get(f.name, "")
    return out


def field_paths(config: Any = None, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, current value, docstring-free type name) of every leaf field, for building the CLI."""
    config = config if config is not None else TrainConfig()
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(field_paths(value, f"{prefix}{f.name}."))
        else:
            out.append((f"{prefix}{f.name}", value, str(f.type)))
    return out


def from_dict(doc: dict[str, Any]) -> TrainConfig:
    """Rebuild a saved config (``config.yaml`` of a run or bundle)."""
    return merge(TrainConfig(), doc).validate()
