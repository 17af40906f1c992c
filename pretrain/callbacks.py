"""SB3 callbacks of a training run: episode statistics, progress bar, limits, checkpoints, action usage.

Logged to TensorBoard (SB3's logger) under namespaced keys:

| key | meaning |
|---|---|
| ``episode/return``, ``episode/length`` | mean over episodes finished since the last row |
| ``episode/tracking_error_xy`` | m/s, mean over an episode of abs(command_xy - body velocity_xy) |
| ``reward_terms/<name>`` | weighted episode sum of each reward term |
| ``actions/used_fraction`` | share of the bound width the central 95% of actions occupies |
| ``time/steps_per_s`` | transitions per wall-clock second, learning included |
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from pretrain.curves import CurveWriter


class EpisodeStats:
    """Episodes finished since the last ``pop()`` (return, length, tracking error, reward terms)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.total = 0

    def add_infos(self, infos: list[dict[str, Any]]) -> None:
        for info in infos:
            ep = info.get("episode")
            if ep is None:
                continue
            row = {"ep_return": float(ep["r"]), "ep_length": float(ep["l"])}
            if "tracking_error_xy" in info:
                row["tracking_error"] = float(info["tracking_error_xy"])
            for name, value in info.get("reward_terms", {}).items():
                row[f"term/{name}"] = float(value)
            self.rows.append(row)
            self.total += 1

    def pop(self) -> dict[str, float]:
        rows, self.rows = self.rows, []
        keys = {k for r in rows for k in r}
        return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


class ActionRecorder:
    """A bounded sample of the normalized actions sent to the env (for the bounds-usage check)."""

    def __init__(self, capacity: int = 50_000, seed: int = 0) -> None:
        self.capacity = capacity
        self.buffer: np.ndarray | None = None
        self.count = 0
        self._rng = np.random.default_rng(seed)

    def add(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions, dtype=np.float32).reshape(-1, actions.shape[-1])
        if self.buffer is None:
            self.buffer = np.zeros((self.capacity, actions.shape[1]), np.float32)
        for row in actions:  # reservoir sampling keeps a uniform sample of the recent run
            if self.count < self.capacity:
                self.buffer[self.count] = row
            else:
                j = self._rng.integers(0, self.count + 1)
                if j < self.capacity:
                    self.buffer[j] = row
            self.count += 1

    def sample(self) -> np.ndarray:
        if self.buffer is None:
            return np.zeros((0, 0), np.float32)
        return self.buffer[: min(self.count, self.capacity)].copy()

    def clear(self) -> None:
        self.count = 0


class TrainMonitor(BaseCallback):
    """Curve rows, TensorBoard scalars, a progress bar, wall-clock/step limits, periodic checkpoints.

    Args:
        curve: where rows go.
        total_timesteps: step budget for this call to ``learn`` (0: none).
        minutes: wall-clock budget for this call (0: none).
        log_every_s: seconds between curve rows.
        checkpoint_every_s: seconds between checkpoints (``save_checkpoint()`` is called).
        save_checkpoint: writes a bundle; called from the training thread between steps.
        time_offset_s: wall-clock already spent by the run before this call (resumes).
        progress: show a tqdm bar.
    """

    def __init__(
        self,
        curve: CurveWriter,
        *,
        total_timesteps: int,
        minutes: float,
        log_every_s: float,
        checkpoint_every_s: float,
        save_checkpoint: Callable[[], Any],
        time_offset_s: float = 0.0,
        progress: bool = True,
        recorder: ActionRecorder | None = None,
    ) -> None:
        super().__init__()
        self.curve = curve
        self.total_timesteps = int(total_timesteps)
        self.budget_s = minutes * 60.0
        self.log_every_s = log_every_s
        self.checkpoint_every_s = checkpoint_every_s
        self.save_checkpoint = save_checkpoint
        self.time_offset_s = time_offset_s
        self.progress = progress
        self.recorder = recorder
        self.stats = EpisodeStats()
        self.last_row: dict[str, float] = {}
        self.stop_reason = ""
        self._stop_signal: int | None = None

    # -- lifecycle --
    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()
        self.start_steps = self.model.num_timesteps
        self._last_log = self._last_ckpt = self.t0
        self._steps_at_last_log = self.start_steps
        total = self.total_timesteps if self.total_timesteps else None
        unit = "steps" if total else "s"
        if not total and self.budget_s:
            total = int(self.budget_s)
        self.bar = tqdm(total=total, unit=unit, disable=not self.progress, dynamic_ncols=True, desc="train")
        self._old_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum  # stop between steps; the trainer then writes a final checkpoint

    def _on_training_end(self) -> None:
        self._log_row(time.perf_counter())
        self.bar.close()
        # The handlers stay until restore_signals(): a signal during the final checkpoint, summary and plots is
        # recorded (a stop was asked) instead of killing the run before they are written.

    def restore_signals(self) -> None:
        """Put back the SIGINT/SIGTERM handlers of before training (the trainer calls it when all is written)."""
        for sig, handler in getattr(self, "_old_handlers", {}).items():
            signal.signal(sig, handler)
        self._old_handlers = {}

    # -- per step --
    def _on_step(self) -> bool:
        self.stats.add_infos(self.locals.get("infos", []))
        if self.recorder is not None and self.model.num_timesteps > getattr(self.model, "learning_starts", 0):
            actions = self.locals.get("clipped_actions", self.locals.get("actions"))
            if actions is not None:
                self.recorder.add(np.asarray(actions))
        now = time.perf_counter()
        elapsed = now - self.t0
        done_steps = self.model.num_timesteps - self.start_steps
        if self.total_timesteps:
            self.bar.n = min(done_steps, self.total_timesteps)
        else:
            self.bar.n = int(elapsed)
        self.bar.refresh() if now - getattr(self, "_last_bar", 0.0) > 0.5 else None
        self._last_bar = now
        if now - self._last_log >= self.log_every_s:
            self._log_row(now)
        if self.checkpoint_every_s and now - self._last_ckpt >= self.checkpoint_every_s:
            self._last_ckpt = now
            self.save_checkpoint()
        if self._stop_signal is not None:
            return self._stop(f"signal {signal.Signals(self._stop_signal).name}")
        if self.total_timesteps and done_steps >= self.total_timesteps:
            return self._stop("timesteps")
        if self.budget_s and elapsed >= self.budget_s:
            return self._stop("minutes")
        return True

    def _stop(self, reason: str) -> bool:
        """Stop after this step, keeping it: SB3's off-policy loop counts a step in ``num_timesteps``
        before calling the callback and stores it in the replay buffer only if the callback returns
        True, so a plain ``return False`` would drop the last ``num_envs`` transitions (a bundle's
        buffer would hold fewer transitions than its step count). Store it the way SB3 would have."""
        self.stop_reason = reason
        loc, model = self.locals, self.model
        if getattr(model, "replay_buffer", None) is not None and "buffer_actions" in loc:
            model._update_info_buffer(loc["infos"], loc["dones"])
            model._store_transition(
                loc["replay_buffer"], loc["buffer_actions"], loc["new_obs"], loc["rewards"], loc["dones"], loc["infos"]
            )
            model._episode_num += int(np.sum(loc["dones"]))
        return False

    def _log_row(self, now: float) -> None:
        stats = self.stats.pop()
        steps = self.model.num_timesteps
        dt = max(now - self._last_log, 1e-9)
        rate = (steps - self._steps_at_last_log) / dt
        self._last_log, self._steps_at_last_log = now, steps
        row = {
            "time_s": round(self.time_offset_s + now - self.t0, 2),
            "timesteps": steps,
            "episodes": self.stats.total,
            **stats,
        }
        if stats:
            self.curve.write(row)
            self.last_row = row
            self.logger.record("episode/return", stats["ep_return"])
            self.logger.record("episode/length", stats["ep_length"])
            if "tracking_error" in stats:
                self.logger.record("episode/tracking_error_xy", stats["tracking_error"])
            for key, value in stats.items():
                if key.startswith("term/"):
                    self.logger.record(f"reward_terms/{key[5:]}", value)
            err = stats.get("tracking_error", math.nan)
            self.bar.set_postfix(
                ret=f"{stats['ep_return']:.2f}",
                err=f"{err:.3f}",
                len=f"{stats['ep_length']:.0f}",
                sps=f"{rate:.0f}",
                refresh=False,
            )
        self.logger.record("time/steps_per_s", rate)
        self.logger.dump(steps)
