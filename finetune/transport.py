"""Fine-tuning transport: the learner's ROUTER server and the robot actor's DEALER client, CurveZMQ on both.

* :class:`SequenceTracker` (no sockets): the learner's exactly-once bookkeeping per actor: ``next_expected``
  (everything below is in the replay buffer) and ``committed`` (everything below is in a checkpoint).
* :class:`LearnerServer`: ROUTER + CURVE server; a ZAP handler (pyzmq ``ThreadAuthenticator``) admits only
  the client public keys found in ``allowed_clients_dir``; an ``actor_id`` is bound to the key that first
  used it. Driven by the learner's loop through :meth:`LearnerServer.serve_once` (one thread).
* :class:`ActorClient`: DEALER + CURVE client with a background I/O thread. The control loop calls only
  :meth:`ActorClient.submit` (never blocks on I/O) and :meth:`ActorClient.take_policy`; the thread spools to
  disk (:class:`finetune.spool.Spool`), sends, handles acks (go-back-N on a learner restart), prunes below
  the learner's commit and keeps the learner's newest verified policy.

The algorithm, frames and threat model are in ``finetune/PROTOCOL.md``. Tests:
``.venv/bin/python -m pytest tests/finetune/test_transport.py -q``; throughput: ``benchmarks/transport.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from finetune.protocol import (
    ACTION_TOLERANCE,
    Ack,
    Heartbeat,
    Hello,
    Lost,
    PolicyUpdate,
    ProtocolError,
    TransitionBatch,
    decode,
    encode,
)
from finetune.spool import Spool

log = logging.getLogger(__name__)

ZAP_DOMAIN = "a1-finetune"
_HANDSHAKE_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed_no_detail",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshakes",
    zmq.EVENT_DISCONNECTED: "disconnects",
}


def _load_keypair(secret_file: Path) -> tuple[bytes, bytes]:
    public, secret = zmq.auth.load_certificate(Path(secret_file))
    if not secret:
        raise ValueError(f"{secret_file} holds no secret key (pass the *.key_secret file, not the public *.key)")
    return public, secret


def _counter(stats: dict[str, int], key: str, what: str, amount: int = 1) -> None:
    """Count an event; log it the 1st, 2nd, 4th, 8th... time so a flood cannot flood the log."""
    stats[key] = count = stats.get(key, 0) + amount
    if count & (count - 1) == 0:
        log.warning("%s (%s = %d)", what, key, count)


class SequenceTracker:
    """Per-actor exactly-once bookkeeping of the learner (``counters``: accepted, duplicates, gaps, lost)."""

    def __init__(self) -> None:
        self.next_expected: dict[str, int] = {}  # actor -> every seq below is in the learner's buffer
        self.committed: dict[str, int] = {}  # actor -> every seq below is in a checkpoint on disk
        self.keys: dict[str, str] = {}  # actor -> z85 public key that first used the actor id
        self.counters: dict[str, int] = {"accepted": 0, "duplicates": 0, "gaps": 0, "lost": 0}

    @property
    def duplicates(self) -> int:
        """Rows received that the buffer already held (dropped)."""
        return self.counters["duplicates"]

    @property
    def gaps(self) -> int:
        """Batches dropped because rows before them were missing (the actor resends)."""
        return self.counters["gaps"]

    def accept(self, batch: TransitionBatch) -> TransitionBatch | None:
        """The rows of ``batch`` the buffer does not hold yet, if they continue the stream; else None."""
        expected = self.next_expected.get(batch.actor_id, 0)
        self.committed.setdefault(batch.actor_id, 0)
        if batch.first_seq > expected:
            self.counters["gaps"] += 1
            return None
        if batch.end_seq <= expected:
            self.counters["duplicates"] += len(batch)
            return None
        fresh = batch if batch.first_seq == expected else batch.slice(expected - batch.first_seq, len(batch))
        self.counters["duplicates"] += len(batch) - len(fresh)
        self.counters["accepted"] += len(fresh)
        self.next_expected[batch.actor_id] = batch.end_seq
        return fresh

    def skip(self, actor_id: str, start: int, stop: int) -> int:
        """The actor declared seqs [start, stop) lost; move past them if they are next. Returns rows skipped."""
        expected = self.next_expected.get(actor_id, 0)
        if not start <= expected < stop:
            return 0
        self.next_expected[actor_id] = stop
        self.committed.setdefault(actor_id, 0)
        self.counters["lost"] += stop - expected
        return stop - expected

    def ack(self, actor_id: str) -> Ack:
        """The Ack that tells ``actor_id`` where its stream stands."""
        return Ack(actor_id, self.next_expected.get(actor_id, 0), self.committed.get(actor_id, 0))

    def commit(self) -> None:
        """Everything accepted so far is now in a checkpoint on disk."""
        self.committed = dict(self.next_expected)

    def state_dict(self) -> dict:
        """JSON-able state; save it inside the checkpoint together with the buffer it describes."""
        actors = {
            a: {"next_expected": n, "committed": self.committed.get(a, 0), "key": self.keys.get(a)}
            for a, n in self.next_expected.items()
        }
        for actor, key in self.keys.items():
            actors.setdefault(actor, {"next_expected": 0, "committed": 0, "key": key})
        return {"format": 1, "actors": actors, "counters": dict(self.counters)}

    @classmethod
    def from_state_dict(cls, d: dict) -> SequenceTracker:
        """Restore from a checkpoint: every row the state says is buffered came from disk, so it is committed."""
        if d.get("format") != 1:
            raise ValueError(f"unknown SequenceTracker state format {d.get('format')!r}")
        tracker = cls()
        for actor, entry in d["actors"].items():
            tracker.next_expected[actor] = tracker.committed[actor] = int(entry["next_expected"])
            if entry.get("key"):
                tracker.keys[actor] = str(entry["key"])
        tracker.counters.update({k: int(v) for k, v in d.get("counters", {}).items()})
        return tracker


class LearnerServer:
    """ROUTER socket, CURVE server, allowlisted clients. Call every method from one thread."""

    def __init__(
        self,
        endpoint: str,
        server_secret_file: Path,
        allowed_clients_dir: Path,
        *,
        tracker: SequenceTracker | None = None,
        contract_hash: str,
        max_message_bytes: int = 8 << 20,
    ) -> None:
        public, secret = _load_keypair(server_secret_file)
        allowed_clients_dir = Path(allowed_clients_dir)
        if not allowed_clients_dir.is_dir():
            raise ValueError(f"allowed_clients_dir {allowed_clients_dir} is not a directory")
        if not any(allowed_clients_dir.glob("*.key")):
            log.warning("no client public keys (*.key) in %s: no actor can connect", allowed_clients_dir)
        self.tracker = tracker if tracker is not None else SequenceTracker()
        self.contract_hash = contract_hash
        self.max_message_bytes = max_message_bytes
        self.stats: dict[str, int] = {"messages": 0, "batches": 0, "rows": 0, "acks_sent": 0, "policies_sent": 0}
        self._allowed_dir = allowed_clients_dir
        self._routes: dict[str, bytes] = {}  # actor -> routing id of its current (helloed) connection
        self._route_actor: dict[bytes, str] = {}
        self._policy: PolicyUpdate | None = None
        self._policy_frames: list[bytes] = []
        self._ctx = zmq.Context()
        self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger(__name__ + ".zap"))
        self._auth.start()
        self._auth.configure_curve(domain=ZAP_DOMAIN, location=str(allowed_clients_dir))
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unknown/vanished peers raise instead of vanishing silently
        sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        self._monitor = sock.get_monitor_socket(sum(_HANDSHAKE_EVENTS))
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as err:
            sock.disable_monitor()
            self._monitor.close(linger=0)
            sock.close(linger=0)
            self._auth.stop()
            self._ctx.term()
            raise OSError(f"cannot bind the learner to {endpoint}: {err}") from err
        self._sock = sock
        self.endpoint: str = sock.getsockopt(zmq.LAST_ENDPOINT).decode()  # resolved (a "*" port becomes a number)
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._closed = False

    def reload_keys(self) -> None:
        """Re-read ``allowed_clients_dir`` (after adding or removing an actor's public key)."""
        self._auth.configure_curve(domain=ZAP_DOMAIN, location=str(self._allowed_dir))

    def serve_once(self, timeout_ms: int, on_batch: Callable[[TransitionBatch], None]) -> int:
        """Wait up to ``timeout_ms`` and handle every waiting message (at most 1000); returns how many.

        Bad messages and refused peers are counted in ``stats``, never raised. An exception from ``on_batch``
        propagates (the tracker has already counted those rows: resume from the last checkpoint).
        """
        events = dict(self._poller.poll(timeout_ms))
        if self._monitor in events:
            self._drain_monitor()
        handled = 0
        while handled < 1000:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            handled += 1
            self._handle(frames, on_batch)
        return handled

    def _drain_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            key = _HANDSHAKE_EVENTS.get(event["event"])
            if key and key.startswith("handshake_failed"):
                _counter(self.stats, key, f"refused a connection from {event['endpoint']!r}")
            elif key:
                self.stats[key] = self.stats.get(key, 0) + 1

    def _handle(self, frames: list[zmq.Frame], on_batch: Callable[[TransitionBatch], None]) -> None:
        self.stats["messages"] += 1
        routing = frames[0].bytes
        try:
            msg = decode([f.buffer for f in frames[1:]], max_bytes=self.max_message_bytes)
        except ProtocolError as err:
            _counter(self.stats, f"rejected_{err.reason}", f"dropped a bad message: {err}")
            return
        try:
            user = frames[-1].get("User-Id")  # the z85 client key, set by the ZAP handler
        except zmq.ZMQError:
            user = None
        if not user:  # cannot happen behind ZAP; refuse rather than bind an actor id to nobody
            _counter(self.stats, "rejected_no_key", "a message without a CURVE user id")
            return
        if isinstance(msg, Hello):
            self._on_hello(routing, user, msg)
            return
        if isinstance(msg, (Ack, PolicyUpdate)):
            _counter(self.stats, "rejected_unexpected", f"dropped a {type(msg).__name__} sent to the learner")
            return
        actor = msg.actor_id
        if self._route_actor.get(routing) != actor:
            _counter(self.stats, "rejected_no_hello", f"{type(msg).__name__} for {actor!r} before a Hello")
            self._send(routing, encode(Heartbeat("learner", actor, time.time(), {"hello_required": True})))
            return
        if isinstance(msg, TransitionBatch):
            self.stats["batches"] += 1
            fresh = self.tracker.accept(msg)
            if fresh is not None:
                self.stats["rows"] += len(fresh)
                on_batch(fresh)
            self._send_ack(actor)
        elif isinstance(msg, Lost):
            skipped = self.tracker.skip(actor, msg.start, msg.stop)
            if skipped:
                _counter(self.stats, "lost_rows", f"actor {actor!r} lost seqs [{msg.start}, {msg.stop})", skipped)
            self._send_ack(actor)
        else:
            self.stats["heartbeats"] = self.stats.get("heartbeats", 0) + 1
            ack = self.tracker.ack(actor)
            stats = {"next_expected": ack.next_expected, "committed": ack.committed}
            self._send(routing, encode(Heartbeat("learner", actor, time.time(), stats)))

    def _on_hello(self, routing: bytes, user: str, hello: Hello) -> None:
        actor = hello.actor_id
        if hello.contract_hash != self.contract_hash:
            _counter(self.stats, "rejected_contract", f"actor {actor!r} runs contract {hello.contract_hash}")
            refusal = {"refused": "contract_hash", "learner_contract_hash": self.contract_hash}
            self._send(routing, encode(Heartbeat("learner", actor, time.time(), refusal)))
            return
        owner = self.tracker.keys.setdefault(actor, user)
        if owner != user:
            _counter(self.stats, "rejected_actor_key", f"key {user} claimed actor id {actor!r} bound to {owner}")
            return
        old = self._routes.get(actor)
        if old is not None and old != routing:
            self._route_actor.pop(old, None)
        self._routes[actor] = routing
        self._route_actor[routing] = actor
        self.stats["hellos"] = self.stats.get("hellos", 0) + 1
        self._send_ack(actor)
        if self._policy is not None and hello.policy_version < self._policy.version:
            if self._send(routing, self._policy_frames):
                self.stats["policies_sent"] += 1

    def _send_ack(self, actor: str) -> None:
        routing = self._routes.get(actor)
        if routing is not None and self._send(routing, encode(self.tracker.ack(actor))):
            self.stats["acks_sent"] += 1

    def _send(self, routing: bytes, frames: list[bytes]) -> bool:
        try:
            self._sock.send_multipart([routing, *frames], zmq.NOBLOCK)
            return True
        except zmq.Again:
            _counter(self.stats, "send_dropped", "an actor is not reading; dropped a reply")
        except zmq.ZMQError as err:
            if err.errno != zmq.EHOSTUNREACH:
                raise
            self.stats["peer_gone"] = self.stats.get("peer_gone", 0) + 1
            actor = self._route_actor.pop(routing, None)
            if actor is not None and self._routes.get(actor) == routing:
                del self._routes[actor]
        return False

    def publish_policy(self, update: PolicyUpdate) -> int:
        """Send ``update`` to every connected actor and remember it for later Hellos; returns actors reached."""
        if update.contract_hash != self.contract_hash:
            raise ValueError(f"policy contract {update.contract_hash} != learner contract {self.contract_hash}")
        if self._policy is not None and update.version <= self._policy.version:
            raise ValueError(f"policy version {update.version} is not newer than {self._policy.version}")
        self._policy, self._policy_frames = update, encode(update)
        reached = sum(self._send(r, self._policy_frames) for r in list(self._routes.values()))
        self.stats["policies_sent"] += reached
        return reached

    def send_acks(self) -> None:
        """Re-send an Ack to every connected actor (call after ``tracker.commit()`` so they may prune)."""
        for actor in list(self._routes):
            self._send_ack(actor)

    def close(self) -> None:
        """Close the sockets and stop the authenticator (the port is free again afterwards)."""
        if self._closed:
            return
        self._closed = True
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._sock.close(linger=0)
        self._auth.stop()
        self._ctx.term()

    def __enter__(self) -> LearnerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ActorClient:
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

    # -- I/O thread -------------------------------------------------------------------------------------
    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a finished handshake: nothing piles up inside zmq
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.setsockopt(zmq.SNDHWM, 4 * self.max_in_flight + 16)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, max(int(self.heartbeat_s * 1000), 100))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(int(self.learner_timeout_s * 1000), 200))
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = self._public, self._secret, self._server_key
        monitor = sock.get_monitor_socket(sum(_HANDSHAKE_EVENTS))
        sock.connect(self.endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        self._sock = sock
        self._cursor = self.next_expected  # next seq to send
        self._inflight: deque[int] = deque()  # end seq of every message sent and not yet acked
        self._max_sent = -1
        self._hello_acked = False
        self._awaiting_hello = False
        self._last_hello = self._last_hb = self._progress_t = -1e9
        self._dup_acks, self._fast_rewind_at = 0, -1
        self._warned_bytes = self.spool_warn_bytes
        try:
            while not self._stop.is_set():
                try:
                    busy = len(self._rows) >= self.batch_size or self._cursor < self.spool.next_seq
                    events = dict(poller.poll(2 if busy else 10))
                    if monitor in events:
                        self._drain_monitor(monitor)
                    self._receive()
                    self._spool_rows(force=False)
                    self._timers()
                    self._send_pending()
                except Exception:  # noqa: BLE001 - a disk or socket error must not kill the actor's I/O
                    self._count("io_errors", "actor I/O error")
                    log.exception("actor I/O error (retrying)")
                    self._stop.wait(0.1)
            self._spool_rows(force=True)
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)
            ctx.term()

    def _drain_monitor(self, monitor: zmq.Socket) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            key = _HANDSHAKE_EVENTS.get(event)
            if key and key.startswith("handshake_failed"):
                self._count(key, f"handshake with the learner at {self.endpoint} failed (wrong keys?)")
            elif key:  # a new or lost connection: nothing is sent until the learner answers a Hello
                self.stats[key] = self.stats.get(key, 0) + 1
                self._hello_acked = False
                if key == "handshakes":
                    self._send_hello()

    def _send(self, frames: list[bytes]) -> bool:
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:  # no finished connection (IMMEDIATE) or the high-water mark: try again later
            return False

    def _send_hello(self) -> None:
        hello = Hello(self.actor_id, self.spool.next_seq, self.contract_hash, self._policy_version)
        self._last_hello = time.monotonic()
        self._awaiting_hello = self._send(encode(hello))

    def _receive(self) -> None:
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frames, max_bytes=self.max_message_bytes)
            except ProtocolError as err:
                self._count(f"rejected_{err.reason}", f"dropped a bad message from the learner: {err}")
                continue
            self._last_rx = time.monotonic()
            if isinstance(msg, Ack):
                self._on_ack(msg)
            elif isinstance(msg, PolicyUpdate):
                self._on_policy(msg)
            elif isinstance(msg, Heartbeat):
                if msg.stats.get("refused") == "contract_hash":
                    self._count("rejected_contract", f"learner refused us: it runs contract {msg.stats}")
                elif msg.stats.get("hello_required"):
                    self._hello_acked = False
                    self._send_hello()
            else:
                self._count("rejected_unexpected", f"dropped a {type(msg).__name__} from the learner")

    def _on_ack(self, ack: Ack) -> None:
        if ack.actor_id != self.actor_id:
            self._count("rejected_actor", f"Ack for actor {ack.actor_id!r}")
            return
        now, ne = time.monotonic(), ack.next_expected
        if self._awaiting_hello:  # the Hello's answer is authoritative: continue from where the learner stands
            self._awaiting_hello, self._hello_acked = False, True
            if ne > self.spool.next_seq:  # the learner holds seqs this spool forgot (spool lost): never reuse them
                with self._lock:
                    delta = ne - self.spool.next_seq
                    self.spool.advance(ne)
                    self._mem_first += delta
                    self._next_seq += delta
                self._count("seq_jumps", f"learner is at {ne}, the spool was behind by {delta}: renumbered")
            self._rewind(ne, count=ne < self._cursor)
        elif ne < self.next_expected:  # the learner went back (restarted from a checkpoint): go-back-N
            self._rewind(ne)
        elif ne > self.next_expected:
            self._progress_t, self._dup_acks = now, 0
        elif self._cursor > ne and ack.committed == self.committed:
            self._dup_acks += 1  # the learner dropped a message (gap): resend, once per stuck position
            if self._dup_acks >= 2 and self._fast_rewind_at != ne:
                self._fast_rewind_at = ne
                self._rewind(ne)
        while self._inflight and self._inflight[0] <= ne:
            self._inflight.popleft()
        self._cursor = max(self._cursor, ne)
        self.next_expected = self.stats["acked"] = ne
        self.committed = self.stats["committed"] = ack.committed
        pruned = self.spool.prune(ack.committed)
        self.stats["pruned"] += pruned

    def _on_policy(self, update: PolicyUpdate) -> None:
        if update.contract_hash != self.contract_hash:
            self._count("rejected_contract", f"policy v{update.version} is for contract {update.contract_hash}")
            return
        with self._lock:
            if update.version <= max(self._newest_version, self._policy_version):
                self.stats["stale_policies"] = self.stats.get("stale_policies", 0) + 1
                return
            self._newest_version = update.version
            self._policy = update
            self.stats["policies_received"] += 1

    def _spool_rows(self, force: bool) -> None:
        with self._lock:
            due = len(self._rows) >= self.batch_size or time.monotonic() - self._oldest_row_t >= self.flush_s
            if not self._rows or not (due or force):
                return
            rows, first = self._rows, self._mem_first
            self._rows, self._mem_first = [], first + len(rows)
        try:
            vectors, terminated, truncated, versions = zip(*rows, strict=True)
            table = np.stack(vectors)
            d, a, names = self._dims
            batch = TransitionBatch(
                actor_id=self.actor_id,
                first_seq=first,
                obs=table[:, :d],
                actions=table[:, d : d + a],
                rewards=table[:, 2 * d + a],
                next_obs=table[:, d + a : 2 * d + a],
                terminated=np.array(terminated),
                truncated=np.array(truncated),
                policy_version=np.array(versions, dtype=np.int32),
                reward_terms={k: table[:, 2 * d + a + 1 + i] for i, k in enumerate(names)},
            )
            self.spool.append(batch)
        except BaseException:
            with self._lock:  # keep the rows (disk full?): they are retried on the next pass
                self._rows, self._mem_first = rows + self._rows, first
            raise
        with self._lock:
            self.stats["spooled"] += len(rows)

    def _timers(self) -> None:
        now = time.monotonic()
        if self._hello_acked and now - self._last_rx > self.learner_timeout_s:
            self._hello_acked = False
            log.warning(
                "learner at %s silent for %.1f s; spooling and saying Hello", self.endpoint, now - self._last_rx
            )
        if not self._hello_acked:
            if now - self._last_hello >= self.heartbeat_s:
                self._send_hello()
            return
        if now - self._last_hb >= self.heartbeat_s:
            self._last_hb = now
            stats = {k: self.stats.get(k, 0) for k in ("submitted", "spooled", "sent", "resent", "rewinds")}
            self._send(encode(Heartbeat("actor", self.actor_id, time.time(), stats)))
            size = self.spool.bytes_on_disk
            if size > self._warned_bytes:
                self._warned_bytes = 2 * size
                log.warning("spool %s holds %.1f MB not yet committed by the learner", self.spool.directory, size / 1e6)
        if self._cursor > self.next_expected and now - self._progress_t > self.learner_timeout_s:
            self._rewind(self.next_expected)  # acks stopped coming: resend the window

    def _rewind(self, seq: int, count: bool = True) -> None:
        """Go-back-N: send again from ``seq`` (the learner drops what it already holds)."""
        self._cursor, self._progress_t, self._dup_acks = seq, time.monotonic(), 0
        self._inflight.clear()
        self.stats["rewinds"] += int(count)

    def _message_rows(self) -> int:
        """Rows per message: ``batch_size``, or up to 20x that (within max_message_bytes / 4) to drain a backlog."""
        d, a, names = self._dims or (1, 1, ())
        row_bytes = 4 * (2 * d + a + 1 + len(names)) + 6
        cap = max(self.batch_size, min(20 * self.batch_size, self.max_message_bytes // (4 * row_bytes)))
        return min(max(self.spool.next_seq - self._cursor, self.batch_size), cap)

    def _send_pending(self) -> None:
        while self._hello_acked and self._cursor < self.spool.next_seq and len(self._inflight) < self.max_in_flight:
            batch = self.spool.read_from(self._cursor, self._message_rows())
            stop = self.spool.next_seq if batch is None else batch.first_seq
            if stop > self._cursor:  # a hole in the spool (corrupt segment, or pruned): say those rows are gone
                if not self._send(encode(Lost(self.actor_id, self._cursor, stop))):
                    return
                self._count("lost_declared", f"spool lost seqs [{self._cursor}, {stop})", stop - self._cursor)
                self._cursor = stop
                continue
            if not self._send(encode(batch)):
                return
            if self._cursor == self.next_expected:
                self._progress_t = time.monotonic()
            fresh = max(batch.end_seq - max(self._max_sent + 1, batch.first_seq), 0)
            self.stats["sent"] += fresh
            self.stats["resent"] += len(batch) - fresh
            self._max_sent = max(self._max_sent, batch.end_seq - 1)
            self._cursor = batch.end_seq
            self._inflight.append(batch.end_seq)
