"""The fine-tuning learner (workstation): the pretraining model keeps learning from the robot's transitions.

Usage::

    python -m finetune learner --bundle pretrain/reference_policy --keys keys/ --out runs/finetune
    python -m finetune learner --resume runs/finetune            # after a crash or Ctrl-C: continues exactly
    a1-finetune-learner ...                                     # the same, as a console script

It loads a checkpoint bundle (:mod:`a1_common.bundle`): the same SB3 SAC/TQC model (actor, critics, target
critics, entropy coefficient, optimizer states, update count) and, when the bundle has one, its simulator replay
buffer. Real transitions arrive from the robot's actor over :mod:`finetune.transport` (CurveZMQ) into a
second buffer of the same class; every gradient step samples ``real_fraction`` of its batch from the real buffer
and the rest from the simulator buffer (symmetric sampling at 0.5; all real when there is no simulator data).
``--fresh`` starts from new networks instead (training from scratch on the robot: the baseline fine-tuning has
to beat).

The actor is anchored to the bundle's actor (``anchor_weight``; TD3+BC's scaling; :mod:`finetune.anchored`): plain
SAC continued from a pretrained model on a small replay buffer of its own policy's data degrades the policy within a
few thousand updates, even without any dynamics gap (measured in a gapped copy of the training simulator:
``benchmarks/finetune_sim.py``), because critics fitted to the narrow data of one policy give the actor gradients
towards actions that data never covers.

Gradient steps run between socket polls at ``utd`` updates per real transition received (after
``learning_starts`` real transitions), so the robot never waits for the learner. Every ``publish_every`` updates
the actor is exported to ONNX with :func:`deploy.export.export_model` (parity-checked, contract inside) and
published; the actor swaps it in between two control ticks. Checkpoints (:mod:`finetune.learner_checkpoint`) are
written atomically every ``checkpoint_every_s``, at the end and on SIGINT/SIGTERM, and only then are the actors told
that their transitions are safe (``committed``), so a learner killed at any moment loses nothing an actor has not
still spooled. Settings: :class:`~finetune.learner_config.LearnerConfig`; command line: :mod:`finetune.learner_cli`.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from a1_common.bundle import BUFFER_FILE, BundleError, CheckpointDir, load_bundle_files, load_replay_buffer
from finetune.buffers import FrozenObsNorm, MixedReplayBuffer, SpacesOnlyEnv, new_buffer, simulated_buffer
from finetune.learner_checkpoint import LearnerStats, read_checkpoint, restore_checkpoint, save_checkpoint
from finetune.learner_config import LEARNER_CONFIG_FILE, LearnerConfig, resume_overrides
from finetune.messages import PolicyUpdate, TransitionBatch
from finetune.transport import LearnerServer, SequenceTracker

SIM_BUFFER_FILE = "sim_buffer.npz"
EXPORT_TOLERANCE = 1e-4
"""Max abs error (raw action units) between torch and onnxruntime for a published policy."""


class Learner:
    """See the module docs. ``run()`` serves until the budget is spent or a signal arrives."""

    def __init__(self, config: LearnerConfig, *, resume: str | None = None, progress: bool = True) -> None:
        from finetune.anchored import ANCHORED_CLASSES
        from pretrain.config import from_dict
        from pretrain.factory import make_model

        th.set_num_threads(max(1, config.torch_threads))
        self.config = config
        self.out = Path(config.out)
        self.progress = progress
        checkpoint = None
        if resume is not None:
            checkpoint, state = read_checkpoint(resume)
            self.config = config = LearnerConfig(**{**state["config"], **resume_overrides(config)})
            self.out = Path(config.out)
        source = load_bundle_files(config.bundle)
        self.source = source
        self.contract = source.contract
        self.algo = source.algo
        if self.algo not in ("sac", "tqc"):
            raise BundleError(f"{config.bundle}: fine-tuning needs an off-policy (sac/tqc) bundle, not {self.algo}")
        self.train_config = from_dict(source.config)
        self.obs_norm = source.obs_norm
        if checkpoint is not None:
            checkpoint.contract.require_same(self.contract, what=f"checkpoint {checkpoint.path}")
            self.model = ANCHORED_CLASSES[self.algo].load(checkpoint.path / "model.zip", device="cpu")
        elif config.fresh:
            self.model = make_model(
                self.train_config, SpacesOnlyEnv(self.contract), model_class=ANCHORED_CLASSES[self.algo]
            )
        else:
            self.model = ANCHORED_CLASSES[self.algo].load(source.path / "model.zip", device="cpu")
        model = self.model
        if config.learning_rate > 0:
            from stable_baselines3.common.utils import get_schedule_fn

            model.learning_rate = config.learning_rate
            model.lr_schedule = get_schedule_fn(config.learning_rate)
        model._vec_normalize_env = FrozenObsNorm(self.obs_norm)
        if config.anchor_weight > 0 and not config.fresh:
            anchor = (
                self.model.actor
                if checkpoint is None
                else ANCHORED_CLASSES[self.algo].load(source.path / "model.zip", device="cpu").actor
            )
            model.anchor_to(anchor, config.anchor_weight)
        from stable_baselines3.common.logger import configure

        model.set_logger(configure(str(self.out / "tb"), ["tensorboard"]))
        sim_buffer = None
        if config.use_sim_buffer and not config.fresh and source.has_replay_buffer:
            sim_buffer = self._new_buffer(self.train_config.offpolicy.buffer_size, self.train_config.env.num_envs)
            load_replay_buffer(sim_buffer, source.path / BUFFER_FILE)
        elif config.use_sim_buffer and not config.fresh and config.sim_fill > 0:
            sim_buffer = self._filled_sim_buffer(config.sim_fill, progress)
        self.real = self._new_buffer(config.real_buffer_size, 1)
        self.real_seq = np.full(config.real_buffer_size, -1, dtype=np.int64)
        self.real_actor = np.full(config.real_buffer_size, -1, dtype=np.int32)
        self.actor_names: list[str] = []
        self.mixed = MixedReplayBuffer(sim_buffer, self.real, config.real_fraction)
        model.replay_buffer = self.mixed
        self.batch_size = config.batch_size or model.batch_size
        self.stats = LearnerStats()
        self.tracker = SequenceTracker()
        if checkpoint is not None:
            restore_checkpoint(self, checkpoint.path, state)
        self.checkpoints = CheckpointDir(self.out, keep=2, prefix="update_")
        self._stop_reason: str | None = None
        self._csv_path = self.out / "learner.csv"
        self._logs: list[float] = []
        self.server: LearnerServer | None = None
        self.resumed_from = str(checkpoint.path) if checkpoint is not None else None

    # ---- buffers --------------------------------------------------------------------------------
    def _new_buffer(self, size: int, n_envs: int) -> Any:
        return new_buffer(self.model, size, n_envs)

    def _filled_sim_buffer(self, transitions: int, progress: bool) -> Any:
        """The bundle's policy in the embedded simulator (``sim_fill``); cached in ``out/sim_buffer.npz``."""
        cache = self.out / SIM_BUFFER_FILE
        if not cache.is_file():
            self.log(f"learner: the bundle has no replay buffer; simulating {transitions} transitions of its policy")
        return simulated_buffer(self.model, self.train_config, self.contract, transitions, cache, progress)

    @property
    def real_size(self) -> int:
        return int(self.real.size())

    def real_sequence_numbers(self) -> dict[str, np.ndarray]:
        """Actor -> sorted sequence numbers of the transitions held in the real buffer."""
        n = self.real_size
        out = {}
        for index, name in enumerate(self.actor_names):
            out[name] = np.sort(self.real_seq[:n][self.real_actor[:n] == index])
        return out

    def insert(self, batch: TransitionBatch) -> None:
        """Store new, in-order transitions (from :class:`~finetune.transport.SequenceTracker`)."""
        if batch.obs.shape[1] != self.contract.obs_dim or batch.actions.shape[1] != self.contract.num_joints:
            raise ValueError(f"transition shapes {batch.obs.shape}/{batch.actions.shape} do not fit the contract")
        if batch.actor_id not in self.actor_names:
            self.actor_names.append(batch.actor_id)
        actor = self.actor_names.index(batch.actor_id)
        stats = self.stats
        running = stats.current_return.get(batch.actor_id, 0.0)
        for i in range(len(batch)):
            terminated, truncated = bool(batch.terminated[i]), bool(batch.truncated[i])
            pos = self.real.pos
            self.real.add(
                batch.obs[i : i + 1],
                batch.next_obs[i : i + 1],
                batch.actions[i : i + 1],
                batch.rewards[i : i + 1],
                np.array([terminated or truncated]),
                [{"TimeLimit.truncated": truncated and not terminated}],
            )
            self.real_seq[pos], self.real_actor[pos] = batch.first_seq + i, actor
            running += float(batch.rewards[i])
            if terminated or truncated:
                stats.episodes += 1
                stats.falls += int(terminated)
                stats.timeouts += int(truncated and not terminated)
                stats.episode_returns.append(round(running, 5))
                running = 0.0
        stats.current_return[batch.actor_id] = running
        stats.real_transitions += len(batch)
        if stats.real_transitions >= self.config.learning_starts:
            stats.owed_updates += self.config.utd * len(batch)

    # ---- policies and checkpoints -------------------------------------------------------------
    def publish_policy(self) -> Path | None:
        """Export and publish the current actor; ``None`` (logged, counted) if the export's parity check fails."""
        from deploy.export import ExportError, export_model

        self.stats.policy_version += 1
        version = self.stats.policy_version
        path = self.out / "policies" / f"policy_v{version:05d}.onnx"
        meta = {**self.source.meta, "bundle_id": f"finetune-v{version}", "num_timesteps": self.stats.real_transitions}
        self.model.policy.set_training_mode(False)
        try:  # raw actions reach a few rad: float32 rounding through tanh and the rescale is ~1e-5 there
            export_model(
                self.model.policy,
                self.algo,
                self.obs_norm,
                self.contract,
                meta,
                path,
                tolerance=EXPORT_TOLERANCE,
                verbose=False,
            )
        except ExportError as exc:  # the robot keeps its current policy; the learner keeps learning
            self.stats.policy_version -= 1
            self.stats.export_failures += 1
            self.log(f"learner: policy not published: {exc}")
            return None
        if self.server is not None:
            update = PolicyUpdate(version, self.stats.updates, self.contract.hash, path.read_bytes())
            self.server.publish_policy(update)
        return path

    def checkpoint(self) -> Path:
        """Write a checkpoint atomically (:func:`~finetune.learner_checkpoint.save_checkpoint`), then tell the actors
        their transitions up to here are safe."""
        dest = save_checkpoint(self)
        self.tracker.commit()
        if self.server is not None:
            self.server.send_acks()
        return dest

    def train(self, gradient_steps: int) -> None:
        """Gradient steps; during ``critic_warmup`` the actor and entropy coefficient are put back afterwards."""
        if self.stats.updates >= self.config.critic_warmup:
            self.model.train(gradient_steps=gradient_steps, batch_size=self.batch_size)
            return
        self.model.train_critics_only(gradient_steps, self.batch_size)

    def train_owed(self, limit: int | None = None) -> int:
        """The gradient steps owed for the transitions received (``utd`` each), at most ``limit``; returns how many."""
        owed = int(self.stats.owed_updates)
        if owed <= 0 or self.real_size == 0:
            return 0
        k = owed if limit is None else min(owed, limit)
        self.train(k)
        self.stats.updates += k
        self.stats.owed_updates -= k
        return k

    # ---- the loop -----------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    def run(self) -> dict[str, Any]:
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / LEARNER_CONFIG_FILE).write_text(json.dumps(asdict(config), indent=1) + "\n")
        keys = Path(config.keys)
        self.server = LearnerServer(
            config.endpoint,
            keys / "learner.key_secret",
            keys / "authorized",
            tracker=self.tracker,
            contract_hash=self.contract.hash,
        )
        previous = {
            sig: signal.signal(sig, lambda s, f: self.request_stop(signal.Signals(s).name))
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        bar = _progress(self.progress)
        started = time.monotonic()
        last_checkpoint = started
        updates_this_run = 0
        last_publish = self.stats.updates
        try:
            self.log(
                f"learner: {self.algo} from {config.bundle}{' (fresh networks)' if config.fresh else ''}; "
                f"sim buffer {self.mixed.sim.size() * self.mixed.sim.n_envs if self.mixed.sim else 0} "
                f"transitions; listening on {config.endpoint}"
            )
            if config.fresh and self.stats.policy_version == 0:
                self.publish_policy()  # from scratch: the robot starts from these networks, not the bundle's
            while self._stop_reason is None:
                owed = int(self.stats.owed_updates)
                self.server.serve_once(0 if owed > 0 else 20, self.insert)
                k = self.train_owed(config.max_updates_per_poll)
                if k:
                    updates_this_run += k
                    if self.stats.updates - last_publish >= config.publish_every:
                        self.publish_policy()
                        last_publish = self.stats.updates
                        self._log_row(started)
                now = time.monotonic()
                if now - last_checkpoint >= config.checkpoint_every_s:
                    self.checkpoint()
                    last_checkpoint = now
                if config.minutes and now - started >= config.minutes * 60:
                    self.request_stop("time budget")
                if config.max_updates and updates_this_run >= config.max_updates:
                    self.request_stop("update budget")
                bar(self.stats, self.server.stats)
            self.log(f"learner: stopping ({self._stop_reason}); writing the final checkpoint")
            path = self.checkpoint()
            self._log_row(started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.server.close()
        summary = {"stop_reason": self._stop_reason, "checkpoint": str(path), **self.summary()}
        (self.out / "learner_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {
            "real_transitions": s.real_transitions,
            "real_buffer": self.real_size,
            "updates": s.updates,
            "policy_version": s.policy_version,
            "episodes": s.episodes,
            "falls": s.falls,
            "server": dict(self.server.stats) if self.server is not None else {},
        }

    def _log_row(self, started: float) -> None:
        s = self.stats
        logger = self.model.logger
        row = {
            "wall_s": round(time.monotonic() - started, 2),
            "real_transitions": s.real_transitions,
            "updates": s.updates,
            "policy_version": s.policy_version,
            "episodes": s.episodes,
            "falls": s.falls,
            "mean_return_last10": round(float(np.mean(s.episode_returns[-10:])), 4) if s.episode_returns else "",
            "ent_coef": logger.name_to_value.get("train/ent_coef", ""),
            "critic_loss": logger.name_to_value.get("train/critic_loss", ""),
        }
        logger.dump(s.updates)
        new = not self._csv_path.exists()
        with open(self._csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def _progress(enabled: bool):
    if not enabled:
        return lambda stats, server: None
    from tqdm import tqdm

    bar = tqdm(desc="finetune", unit=" transitions", dynamic_ncols=True, mininterval=0.5)
    last = {"n": 0}

    def update(stats: LearnerStats, server: dict) -> None:
        if stats.real_transitions != last["n"]:
            bar.update(stats.real_transitions - last["n"])
            last["n"] = stats.real_transitions
            rejected = sum(v for k, v in server.items() if k.startswith("rejected"))
            bar.set_postfix(
                updates=stats.updates, policy=stats.policy_version, episodes=stats.episodes, rejected=rejected
            )

    return update
