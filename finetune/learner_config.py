"""The fine-tuning learner's settings: :class:`LearnerConfig` (every field is a flag of ``a1-finetune-learner``,
:mod:`finetune.learner_cli`, with its docstring as help) and what a ``--resume`` may change."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEARNER_CONFIG_FILE = "learner_config.json"
"""The run directory's copy of the settings a learner was started with."""


@dataclass
class LearnerConfig:
    """Everything the learner is started with (saved as ``learner_config.json`` in the run directory)."""

    bundle: str = ""
    """Pretraining bundle (or run directory) the model comes from; also where the simulator buffer is read."""
    out: str = "runs/finetune"
    """Run directory: checkpoints, policies, learner.csv, TensorBoard logs."""
    endpoint: str = "tcp://*:5555"
    """Where the learner listens (zmq endpoint)."""
    keys: str = "keys"
    """Key directory: ``learner.key_secret`` and ``authorized/`` with the actors' public keys."""
    fresh: bool = False
    """New networks (same config) instead of the bundle's weights: training from scratch on the robot."""
    utd: float = 1.0
    """Gradient steps per real transition received (update-to-data ratio)."""
    real_fraction: float = 0.5
    """Share of each batch sampled from the real buffer when the simulator buffer has data (0.5: symmetric)."""
    use_sim_buffer: bool = True
    """Sample from the bundle's simulator replay buffer (when it has one)."""
    sim_fill: int = 50_000
    """A bundle without a replay buffer (the committed reference): this many transitions of the bundle's own
    (stochastic) policy in the embedded simulator, under its training conditions, become the simulator buffer;
    written once to ``sim_buffer.npz`` in the run directory (a resume reads it back). 0: none."""
    critic_warmup: int = 1000
    """First gradient steps that update only the critics: the actor waits until they have seen real data."""
    learning_rate: float = 0.0
    """Learning rate of actor, critics and entropy coefficient; 0 = the bundle's."""
    anchor_weight: float = 0.1
    """Pull the actor towards the bundle's actor: weight of the squared distance of their deterministic actions,
    relative to the batch's mean |Q| (TD3+BC's scaling); 0 = plain SAC/TQC. Not used with ``fresh``."""
    learning_starts: int = 200
    """Real transitions received before the first gradient step."""
    batch_size: int = 0
    """Batch size; 0 = the bundle's."""
    publish_every: int = 250
    """Gradient steps between policy updates sent to the actors."""
    checkpoint_every_s: float = 60.0
    """Seconds between checkpoints (also written at the end and on SIGINT/SIGTERM)."""
    real_buffer_size: int = 200_000
    """Capacity of the real-transition buffer."""
    max_updates_per_poll: int = 8
    """Gradient steps between two socket polls (bounds the latency of acks and heartbeats)."""
    minutes: float = 0.0
    """Stop after this many minutes of wall-clock (0: run until stopped)."""
    max_updates: int = 0
    """Stop after this many gradient steps in this process (0: no limit)."""
    torch_threads: int = 1
    """Threads torch uses for the gradient steps and exports."""
    seed: int = 0
    """Recorded with the run's settings; the learner does not seed a generator with it (batches are drawn from
    numpy's global generator, as in SB3)."""

    def problems(self, *, check_keys: bool = True) -> list[str]:
        """What is wrong with these settings, one phrase each (empty: fine); checked before anything starts."""
        out = []
        for name in ("minutes", "max_updates", "sim_fill", "critic_warmup", "learning_rate", "batch_size",
                     "anchor_weight", "learning_starts"):  # fmt: skip
            value = getattr(self, name)
            if not value >= 0:
                out.append(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        for name in ("utd", "publish_every", "checkpoint_every_s", "real_buffer_size", "max_updates_per_poll"):
            value = getattr(self, name)
            if not value > 0:
                out.append(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if not 0.0 <= self.real_fraction <= 1.0:
            out.append(f"--real-fraction must be in [0, 1], got {self.real_fraction}")
        if not re.fullmatch(r"tcp://[^:/\s]+:(\d+|\*)|ipc://\S+|inproc://\S+", self.endpoint):
            out.append(f"--endpoint {self.endpoint!r} is not a zmq endpoint (e.g. tcp://*:5555, ipc:///tmp/learner)")
        secret = Path(self.keys) / "learner.key_secret"
        if check_keys and not secret.is_file():
            out.append(f"--keys {self.keys}: no {secret.name} there (make one: python -m finetune keys --out "
                       f"{self.keys} --name learner)")  # fmt: skip
        return out


RESUME_MAY_CHANGE = ("minutes", "max_updates", "endpoint", "keys", "torch_threads", "checkpoint_every_s")
"""Fields a ``--resume`` may change (budget and machine); every other one continues from the checkpoint."""


def resume_overrides(config: LearnerConfig) -> dict[str, Any]:
    """The fields of ``config`` in :data:`RESUME_MAY_CHANGE` that differ from the defaults (set on the command
    line): they replace the checkpoint's."""
    defaults = LearnerConfig()
    return {k: getattr(config, k) for k in RESUME_MAY_CHANGE if getattr(config, k) != getattr(defaults, k)}
