"""The learner's side of the fine-tuning transport: :class:`SequenceTracker` (exactly-once bookkeeping, no
sockets) and :class:`LearnerServer` (ROUTER + CURVE server, ZAP allowlist). Overview: :mod:`finetune.transport`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from finetune.messages import Ack, Heartbeat, Hello, Lost, PolicyUpdate, ProtocolError, TransitionBatch
from finetune.protocol import decode, encode

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
