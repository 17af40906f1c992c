"""The hyperparameter search space of ``python -m pretrain tune``, declared once as typed parameter specs.

The space is the blog's Part II search (``../shared/design/OFFPOLICY_ANCHORS.md`` (a), "Search space"): gamma,
learning rate, initial entropy coefficient, batch size, network size, train_freq, gradient steps, policy delay
and tau, plus the action-bounds method and scale (Part I's finding). Each parameter is a dotted
:class:`~pretrain.config.TrainConfig` field; ranges are in config units (``pow2`` ranges are powers of two and
sampled as integer exponents, so CMA-ES moves them on a log scale).

``--fix KEY=VALUE`` takes any config field (a searched one leaves the search) with a config value
(``offpolicy.ent_coef=auto_0.01``, ``offpolicy.net_arch=[64,64]``); ``--narrow KEY=LOW:HIGH`` sets the range
of a numeric parameter (``offpolicy.batch_size=256:1024``) and ``--narrow KEY=A,B`` the choices of a categorical
one (``offpolicy.net_arch=small,default``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from a1_common.cli import UsageError
from pretrain import config as cfgmod

NET_ARCHS: dict[str, list[int]] = {"small": [128, 128], "default": [256, 256], "large": [512, 256, 128]}
"""Network sizes: the blog's "default [256, 256]" ... "large [512, 256, 128]", plus the CPU preset's size."""


@dataclass(frozen=True)
class ParamSpec:
    """One searched hyperparameter."""

    key: str
    """Dotted TrainConfig field the sampled value goes to."""
    kind: str
    """float (uniform or log-uniform), pow2 (a power of two, sampled as its integer exponent) or choice."""
    low: float = 0.0
    """Lowest value, config units (pow2: a power of two)."""
    high: float = 0.0
    """Highest value, config units."""
    log: bool = False
    """float: sample log-uniformly."""
    choices: tuple[str, ...] = ()
    """choice: the names Optuna samples."""
    values: dict[str, Any] | None = field(default=None, compare=False)
    """choice: name -> config value (None: the name is the config value)."""
    template: str = "{}"
    """float: how a sampled number becomes the config value (``auto_{}``: SB3's auto-tuned entropy coefficient
    with that initial value)."""
    doc: str = ""

    @property
    def name(self) -> str:
        """The Optuna parameter name (what plots and the study's tables show)."""
        return f"log2({self.key})" if self.kind == "pow2" else self.key

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "pow2":
            return IntDistribution(_log2(self.low, self.key), _log2(self.high, self.key))
        return CategoricalDistribution(self.choices)

    def to_config(self, sampled: Any) -> Any:
        """The config value of an Optuna sample."""
        if self.kind == "float":
            return float(sampled) if self.template == "{}" else self.template.format(sampled)
        if self.kind == "pow2":
            return 2 ** int(sampled)
        return (self.values or {}).get(sampled, sampled)

    def narrowed(self, text: str) -> ParamSpec:
        """This spec with the range ``LOW:HIGH`` (numeric) or the choices ``A,B,...`` (categorical) of ``text``."""
        if self.kind == "choice":
            names = tuple(n.strip() for n in text.split(",") if n.strip())
            unknown = [n for n in names if n not in self.choices]
            if not names or unknown:
                raise UsageError(f"--narrow {self.key}: choose among {', '.join(self.choices)}, got {text!r}")
            return dataclasses.replace(self, choices=names)
        parts = text.split(":")
        try:
            low, high = (float(yaml.safe_load(p)) for p in parts)
        except (ValueError, TypeError, yaml.YAMLError):
            raise UsageError(f"--narrow {self.key}: expected LOW:HIGH (two numbers), got {text!r}") from None
        if not low <= high or not math.isfinite(high) or ((self.log or self.kind == "pow2") and low <= 0):
            raise UsageError(f"--narrow {self.key}: need 0 < LOW <= HIGH for this parameter, got {text!r}")
        if self.kind == "pow2":  # the powers of two inside [low, high]
            low, high = 2.0 ** math.ceil(math.log2(low) - 1e-9), 2.0 ** math.floor(math.log2(high) + 1e-9)
            if low > high:
                raise UsageError(f"--narrow {self.key}: no power of two in {text!r}")
        return dataclasses.replace(self, low=low, high=high)

    def describe(self) -> str:
        if self.kind == "choice":
            names = [f"{n}={self.values[n]}" if self.values else n for n in self.choices]
            return f"{self.key}: one of {', '.join(names)}"
        scale = "log" if self.log or self.kind == "pow2" else "uniform"
        kind = "power of two" if self.kind == "pow2" else "number"
        shown = self.template.replace("{}", "x") if self.template != "{}" else "x"
        return f"{self.key}: {shown}, {kind} in [{self.low:g}, {self.high:g}] ({scale})"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _log2(value: float, key: str) -> int:
    exponent = math.log2(value)
    if exponent != round(exponent):
        raise ValueError(f"{key}: {value} is not a power of two")
    return int(round(exponent))


SPACE: tuple[ParamSpec, ...] = (
    ParamSpec("offpolicy.gamma", "float", 0.975, 0.995, doc="discount factor"),
    ParamSpec("offpolicy.learning_rate", "float", 1e-4, 2e-3, log=True, doc="Adam learning rate"),
    ParamSpec(
        "offpolicy.ent_coef", "float", 0.001, 0.02, log=True, template="auto_{}", doc="initial entropy coefficient"
    ),
    ParamSpec("offpolicy.batch_size", "pow2", 2**7, 2**12, doc="minibatch size"),
    ParamSpec("offpolicy.net_arch", "choice", choices=tuple(NET_ARCHS), values=NET_ARCHS, doc="hidden layers"),
    ParamSpec("offpolicy.train_freq", "pow2", 2**0, 2**3, doc="vector-env steps between updates"),
    ParamSpec("offpolicy.gradient_steps", "pow2", 2**0, 2**10, doc="gradient steps per update"),
    ParamSpec("offpolicy.policy_delay", "pow2", 2**0, 2**5, doc="critic updates per actor update"),
    ParamSpec("offpolicy.tau", "float", 0.001, 0.05, log=True, doc="target network soft-update rate"),
    # `symmetric` and `explicit` need a width or per-joint values: isaaclab3 is symmetric width 1.
    ParamSpec("bounds.method", "choice", choices=("isaaclab3", "ppo_percentile", "joint_limits"), doc="action bounds"),
    ParamSpec("bounds.scale", "float", 0.5, 2.0, doc="multiplies the action bounds"),
)
"""The default search space (the blog's Part II ranges; the bounds scale range is this project's)."""


def parse_assignments(items: list[str], flag: str) -> dict[str, str]:
    """``["a.b=1", ...]`` -> ``{"a.b": "1"}``; a missing ``=`` or a repeated key is a usage error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        if key in out:
            raise UsageError(f"{flag} {key} given twice")
        out[key] = value.strip()
    return out


def restrict(
    space: tuple[ParamSpec, ...], fixes: dict[str, str], narrows: dict[str, str]
) -> tuple[tuple[ParamSpec, ...], dict[str, Any]]:
    """Apply ``--fix`` and ``--narrow``: the remaining search space and the fixed config values (dotted keys)."""
    fields = {dotted for dotted, _, _ in cfgmod.field_paths()}
    searched = {spec.key: spec for spec in space}
    fixed: dict[str, Any] = {}
    for key, text in fixes.items():
        if key not in fields:
            raise UsageError(
                f"--fix {key}: unknown config field; searched: {', '.join(searched)} (any other field of "
                "'a1-pretrain --help' may be fixed too)"
            )
        try:
            fixed[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UsageError(f"--fix {key}: {text!r} is not a YAML value") from None
    for key, text in narrows.items():
        if key in fixed:
            raise UsageError(f"--narrow {key}: the parameter is also fixed with --fix")
        if key not in searched:
            raise UsageError(f"--narrow {key}: not a search parameter; searched: {', '.join(searched)}")
        searched[key] = searched[key].narrowed(text)
    return tuple(spec for key, spec in searched.items() if key not in fixed), fixed


def suggest(trial: Any, space: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Sample every parameter of ``space`` for an Optuna trial: dotted config key -> config value."""
    values = {}
    for spec in space:
        dist = spec.distribution()
        if spec.kind == "float":
            sampled = trial.suggest_float(spec.name, dist.low, dist.high, log=dist.log)
        elif spec.kind == "pow2":
            sampled = trial.suggest_int(spec.name, dist.low, dist.high)
        else:
            sampled = trial.suggest_categorical(spec.name, dist.choices)
        values[spec.key] = spec.to_config(sampled)
    return values


def middle(space: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """A config value per parameter from the middle of its range: to check a space against the config early."""
    values = {}
    for spec in space:
        if spec.kind == "choice":
            values[spec.key] = spec.to_config(spec.choices[0])
        elif spec.kind == "pow2":
            values[spec.key] = spec.to_config((_log2(spec.low, spec.key) + _log2(spec.high, spec.key)) // 2)
        else:
            mid = math.sqrt(spec.low * spec.high) if spec.log else (spec.low + spec.high) / 2
            values[spec.key] = spec.to_config(mid)
    return values
