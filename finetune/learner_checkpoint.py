"""The fine-tuning learner's checkpoints: what survives a crash, a Ctrl-C or a reboot of the workstation.

A checkpoint (``out/checkpoints/update_<N>-<tag>/``, a ``latest`` link; :class:`~a1_common.bundle.CheckpointDir`)
is a full bundle (the model with its critics, target critics, entropy coefficient, optimizer states and update
count; ``a1-export`` reads it) plus three files:

* ``real_buffer.npz``: the real-transition buffer (:func:`~a1_common.bundle.save_replay_buffer`);
* ``real_seqs.npz``: each real row's actor (index into ``actor_names``) and sequence number;
* ``finetune_state.json``: the settings, :class:`LearnerStats`, the exactly-once bookkeeping
  (:class:`~finetune.transport.SequenceTracker`), the actors' names and the source bundle's id.

The whole directory is written beside its final name and renamed into place, so a learner killed at any moment
leaves the previous checkpoint or the new one, never a mix. The simulator buffer is not copied (it does not
change): a checkpoint names its source bundle and ``--resume`` reads the buffer from there again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from a1_common.bundle import (
    BundleError,
    BundleFiles,
    load_bundle_files,
    load_replay_buffer,
    resolve_bundle_dir,
    save_replay_buffer,
)
from finetune.transport import SequenceTracker

if TYPE_CHECKING:
    from finetune.learner import Learner

REAL_BUFFER_FILE = "real_buffer.npz"
REAL_SEQ_FILE = "real_seqs.npz"
STATE_FILE = "finetune_state.json"


@dataclass
class LearnerStats:
    """Counters of this run (saved in every checkpoint, continued by ``--resume``)."""

    real_transitions: int = 0
    updates: int = 0
    policy_version: int = 0
    episodes: int = 0
    falls: int = 0
    timeouts: int = 0
    owed_updates: float = 0.0
    checkpoints: int = 0
    export_failures: int = 0
    episode_returns: list[float] = field(default_factory=list)
    """Return of every finished real episode, in arrival order."""
    current_return: dict[str, float] = field(default_factory=dict)
    """Per actor: return of the episode in progress."""


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint to resume from: ``path`` as a run directory (its ``checkpoints/latest``), a checkpoints
    directory (its ``latest``) or a checkpoint; raises :class:`~a1_common.bundle.BundleError` when there is none."""
    path = Path(path)
    for candidate in (path / "checkpoints" / "latest", path / "latest", path):
        if (candidate / STATE_FILE).is_file():
            return candidate.resolve()
    raise BundleError(f"{path}: no fine-tuning checkpoint (looked for checkpoints/latest/{STATE_FILE})")


def read_checkpoint(path: str | Path) -> tuple[BundleFiles, dict[str, Any]]:
    """The checkpoint :func:`find_checkpoint` finds at ``path``: its bundle files and its state."""
    checkpoint = load_bundle_files(find_checkpoint(path))
    return checkpoint, json.loads((checkpoint.path / STATE_FILE).read_text())


def save_checkpoint(learner: Learner) -> Path:
    """Write ``learner``'s checkpoint atomically; returns its directory. Telling the actors is the caller's part."""
    learner.stats.checkpoints += 1
    state = {
        "config": asdict(learner.config),
        "stats": asdict(learner.stats),
        "tracker": learner.tracker.state_dict(),
        "actor_names": learner.actor_names,
        "source_bundle_id": learner.source.meta.get("bundle_id"),
    }

    def write_real(path: Path) -> None:
        save_replay_buffer(learner.real, path)

    def write_seqs(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, seq=learner.real_seq, actor=learner.real_actor)

    def write_state(path: Path) -> None:
        path.write_text(json.dumps(state, indent=1) + "\n")

    learner.model.num_timesteps = learner.stats.real_transitions
    return learner.checkpoints.save(
        learner.model,
        learner.obs_norm,
        learner.contract,
        learner.train_config.to_yaml(),
        name=f"update_{learner.stats.updates:010d}-{uuid.uuid4().hex[:4]}",
        algo=learner.algo,
        with_replay_buffer=False,
        extra_meta={"finetune": True, "source_bundle": str(resolve_bundle_dir(learner.config.bundle))},
        extra_files={REAL_BUFFER_FILE: write_real, REAL_SEQ_FILE: write_seqs, STATE_FILE: write_state},
    )


def restore_checkpoint(learner: Learner, checkpoint: Path, state: dict[str, Any]) -> None:
    """Put a checkpoint's real buffer, row bookkeeping, sequence tracker and counters back into ``learner``.

    The learner loads the checkpoint's ``model.zip`` itself, before its buffers (they take the model's spaces)."""
    load_replay_buffer(learner.real, checkpoint / REAL_BUFFER_FILE)
    with np.load(checkpoint / REAL_SEQ_FILE, allow_pickle=False) as z:
        learner.real_seq[:], learner.real_actor[:] = z["seq"], z["actor"]
    learner.actor_names = list(state["actor_names"])
    learner.tracker = SequenceTracker.from_state_dict(state["tracker"])
    learner.stats = stats = LearnerStats(**state["stats"])
    # Policies published after that checkpoint are out there: never reuse their version numbers.
    published = [int(f.stem.split("_v")[-1]) for f in (learner.out / "policies").glob("policy_v*.onnx")]
    stats.policy_version = max([stats.policy_version, *published])
