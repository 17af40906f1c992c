"""The background I/O thread of :class:`finetune.client.ActorClient`: the DEALER socket and its CURVE handshake,
Hello, acks with go-back-N resends, Lost notices, heartbeats, and moving submitted rows into the disk spool.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from finetune.messages import Ack, Heartbeat, Hello, Lost, PolicyUpdate, ProtocolError, TransitionBatch
from finetune.protocol import decode, encode
from finetune.server import _HANDSHAKE_EVENTS, log


class ActorIO:
    """The I/O-thread methods of :class:`~finetune.client.ActorClient`, which inherits them; its ``__init__``
    creates the shared state (spool, in-memory rows, lock, counters) and :meth:`_run` the socket state."""

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
