"""The robot's side of the fine-tuning transport: :class:`ActorClient` (DEALER + CURVE client, background I/O
thread, disk spool, go-back-N). This module holds the control loop's side (``submit``, ``take_policy``, waits);
the I/O thread is :class:`finetune.client_io.ActorIO`. Overview: :mod:`finetune.transport`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq.auth

from finetune.client_io import ActorIO
from finetune.messages import ACTION_TOLERANCE, PolicyUpdate, ProtocolError
from finetune.server import _counter, _load_keypair
from finetune.spool import Spool


class ActorClient(ActorIO):
    """The robot's side: ``submit`` transitions, ``take_policy`` updates; a background thread does all I/O."""

    def __init__(
        self,
        endpoint: str,
        client_secret_file: Path,
        server_public_file: Path,
        actor_id: str,
        spool_dir: Path,
        *,
        contract_hash: str,
        batch_size: int = 50,
        flush_s: float = 0.5,
        heartbeat_s: float = 0.5,
        learner_timeout_s: float = 2.0,
        max_in_flight: int = 8,
        max_message_bytes: int = 8 << 20,
        spool_warn_bytes: int = 256 << 20,
    ) -> None:
        self.endpoint = endpoint
        self._public, self._secret = _load_keypair(client_secret_file)
        self._server_key, _ = zmq.auth.load_certificate(Path(server_public_file))
        self.actor_id = actor_id
        self.contract_hash = contract_hash
        self.batch_size, self.flush_s, self.heartbeat_s = batch_size, flush_s, heartbeat_s
        self.learner_timeout_s, self.max_in_flight = learner_timeout_s, max_in_flight
        self.max_message_bytes, self.spool_warn_bytes = max_message_bytes, spool_warn_bytes
        self.spool = Spool(Path(spool_dir), actor_id)
        self.stats: dict[str, int] = dict.fromkeys(
            "submitted spooled sent resent acked committed pruned policies_received rewinds".split(), 0
        )
        self.next_expected = 0  # learner: every seq below is in its buffer
        self.committed = 0  # learner: every seq below is in a checkpoint (pruned from the spool)
        self._lock = threading.Lock()  # guards _rows, _mem_first, _next_seq, _policy, stats
        self._rows: list[tuple] = []
        self._mem_first = self._next_seq = self.spool.next_seq
        self._oldest_row_t = 0.0
        self._dims: tuple[int, int, tuple[str, ...]] | None = None
        self._policy: PolicyUpdate | None = None
        self._newest_version = 0
        self._policy_version = 0
        self._last_rx = -1e9
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- control-loop side -----------------------------------------------------------------------------
    def start(self) -> ActorClient:
        """Start the I/O thread (connects in the background; returns at once). A closed client stays closed."""
        if self._stop.is_set():
            raise RuntimeError(f"ActorClient {self.actor_id!r} is closed; make a new one (it reopens the spool)")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"actor-io-{self.actor_id}", daemon=True)
            self._thread.start()
        return self

    def __enter__(self) -> ActorClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, key: str, what: str, amount: int = 1) -> None:
        with self._lock:
            _counter(self.stats, key, what, amount)

    def submit(
        self,
        obs: Any,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        policy_version: int,
        reward_terms: dict[str, float] | None = None,
    ) -> int:
        """Queue one transition (copied); returns its seq, or -1 if it is invalid (counted, logged, not sent)."""
        try:
            row = self._row(obs, action, reward, next_obs, terminated, truncated, policy_version, reward_terms)
        except ProtocolError as err:
            self._count(f"rejected_{err.reason}", f"submit() refused a transition: {err}")
            return -1
        with self._lock:
            if not self._rows:
                self._oldest_row_t = time.monotonic()
            self._rows.append(row)
            seq = self._next_seq
            self._next_seq += 1
            self.stats["submitted"] += 1
        return seq

    def _row(self, obs, action, reward, next_obs, terminated, truncated, policy_version, reward_terms) -> tuple:
        # One float32 vector per row, [obs | action | next_obs | reward | terms]: one copy, one finiteness check.
        obs, action, next_obs = np.ravel(obs), np.ravel(action), np.ravel(next_obs)
        terms = reward_terms or {}
        dims = (obs.size, action.size, tuple(terms))
        if (self._dims is not None and dims != self._dims) or next_obs.size != obs.size:
            raise ProtocolError(
                "shape", f"(obs, action, terms) = {dims}, next_obs {next_obs.size}; first was {self._dims}"
            )
        d, a = obs.size, action.size
        row = np.empty(2 * d + a + 1 + len(terms), np.float32)
        try:
            row[:d], row[d : d + a], row[d + a : 2 * d + a] = obs, action, next_obs
            row[2 * d + a :] = (reward, *terms.values())
        except (TypeError, ValueError) as err:
            raise ProtocolError("shape", f"transition values are not numbers: {err}") from None
        if not np.isfinite(row).all():
            raise ProtocolError("nonfinite", "obs, action, next_obs, reward or a reward term is NaN or inf")
        if -1.0 - ACTION_TOLERANCE > row[d : d + a].min() or row[d : d + a].max() > 1.0 + ACTION_TOLERANCE:
            raise ProtocolError("range", f"action must be normalized to [-1, 1], got {row[d : d + a]}")
        if int(policy_version) < 0:
            raise ProtocolError("range", f"policy_version must be >= 0, got {policy_version}")
        if self._dims is None:
            self._dims = dims  # the first valid transition fixes the widths and reward terms of the stream
        return row, bool(terminated), bool(truncated), int(policy_version)

    def take_policy(self) -> PolicyUpdate | None:
        """The newest verified policy received since the last call (older ones are skipped), or None."""
        with self._lock:
            policy, self._policy = self._policy, None
        return policy

    def set_policy_version(self, version: int) -> None:
        """The version the actor runs now (sent in Hello so a reconnect gets anything newer)."""
        self._policy_version = int(version)

    @property
    def connected(self) -> bool:
        """A learner message arrived within ``learner_timeout_s``."""
        return time.monotonic() - self._last_rx < self.learner_timeout_s

    def wait_acked(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far is in the learner's buffer."""
        return self._wait(lambda: self.next_expected, timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far is committed (checkpointed) by the learner."""
        return self._wait(lambda: self.committed, timeout_s)

    def _wait(self, position: Callable[[], int], timeout_s: float) -> bool:
        target = self._next_seq
        deadline = time.monotonic() + timeout_s
        while position() < target:
            if time.monotonic() > deadline or self._stop.is_set():
                return False
            time.sleep(0.002)
        return True

    def close(self) -> None:
        """Stop the I/O thread; rows still in memory are written to the spool (sent on the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:
            self._spool_rows(force=True)
