"""The actor's durable outbox: every transition is on disk before it goes on the wire.

A spool directory holds one actor's stream as segment files ``<first_seq:020d>-<n:09d>.seg``, each one
encoded :class:`~finetune.messages.TransitionBatch` behind a small checksummed frame, plus ``spool.json``
(actor id and ``next_seq``, so the sequence survives even when every segment was pruned). Appends are
atomic (write ``*.tmp``, fsync, rename, fsync the directory): after a crash a segment is either whole or
absent. Opening a spool verifies every segment's CRC32; a partial temp file or a truncated/corrupt segment
is renamed ``*.corrupt`` (kept for inspection), counted in :attr:`Spool.stats` and logged, and the sequence
never goes backwards past a corrupt segment (its rows are reported as lost, never reused).

Segment frame (little-endian): ``b"A1SPOOL1" | u32 header_len | u64 payload_len | u32 crc32(header+payload)
| header (protocol JSON) | payload (protocol batch payload)``.

Used by :class:`finetune.transport.ActorClient` from its I/O thread (not thread-safe on its own).
Tests: ``.venv/bin/python -m pytest tests/finetune/test_spool.py -q``.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from a1_common.atomic import atomic_write
from finetune.messages import ProtocolError, TransitionBatch
from finetune.protocol import decode, encode

log = logging.getLogger(__name__)

MAGIC = b"A1SPOOL1"
_FRAME = struct.Struct("<IQI")
_SEGMENT = re.compile(r"^(\d{20})-(\d{9})\.seg$")
STATE_FILE = "spool.json"
CACHE_ROWS = 50_000  # recently appended rows kept in memory so sending rarely reads back from disk


@dataclass(frozen=True)
class _Segment:
    first_seq: int
    n: int
    path: Path
    size: int  # bytes on disk

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.n


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, data, tmp_name=path.name + ".tmp")  # *.tmp: what a restart recovers or moves aside


class Spool:
    """Append-only, checksummed, crash-safe store of one actor's transitions, pruned below the learner's commit."""

    def __init__(self, directory: Path, actor_id: str) -> None:
        self.directory = Path(directory)
        self.actor_id = actor_id
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stats: dict[str, int] = {"segments_ok": 0, "corrupt": 0, "partial": 0, "pruned": 0, "lost_rows": 0}
        self._segments: list[_Segment] = []  # sorted by first_seq, contiguous or with holes (lost rows)
        self._firsts: list[int] = []
        self._cache: OrderedDict[int, TransitionBatch] = OrderedDict()
        self._cache_rows = 0
        self.next_seq = self._recover()

    # -- recovery -------------------------------------------------------------------------------------
    def _recover(self) -> int:
        state_path = self.directory / STATE_FILE
        next_seq = 0
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
                owner, next_seq = state["actor_id"], int(state["next_seq"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"spool state {state_path} is unreadable ({err}); inspect or remove it") from None
            if owner != self.actor_id:
                raise ValueError(f"spool {self.directory} belongs to actor {owner!r}, not {self.actor_id!r}")
        for tmp in sorted(self.directory.glob("*.tmp")):
            if tmp.name == STATE_FILE + ".tmp":
                tmp.unlink()
                continue
            # Never renamed: append() had not returned, so its rows were never sent; the seqs get reused.
            self._move_aside(tmp, "partial", "a write interrupted before its rename")
        for path in sorted(self.directory.glob("*.seg")):
            match = _SEGMENT.match(path.name)
            if not match:
                self._move_aside(path, "corrupt", "an unexpected segment file name")
                continue
            first, n = int(match[1]), int(match[2])
            # A corrupt segment's rows are lost, but its seqs stay used: reusing them would let the learner
            # take new rows for duplicates of rows it may already hold.
            next_seq = max(next_seq, first + n)
            problem = self._verify(path, first, n)
            if problem is None and self._segments and first < self._segments[-1].end_seq:
                problem = f"it overlaps the segment ending at {self._segments[-1].end_seq}"
            if problem:
                self._move_aside(path, "corrupt", problem)
                self.stats["lost_rows"] += n
                continue
            self._segments.append(_Segment(first, n, path, path.stat().st_size))
            self.stats["segments_ok"] += 1
        self._firsts = [s.first_seq for s in self._segments]
        self._write_state(next_seq)
        if self.stats["corrupt"] or self.stats["partial"]:
            log.warning("spool %s recovered: %s", self.directory, self.stats)
        return next_seq

    def _verify(self, path: Path, first: int, n: int) -> str | None:
        """None if the segment is whole and holds exactly rows [first, first + n), else what is wrong."""
        data = path.read_bytes()
        head = len(MAGIC) + _FRAME.size
        if len(data) < head or not data.startswith(MAGIC):
            return f"truncated or not a segment ({len(data)} bytes)"
        header_len, payload_len, crc = _FRAME.unpack_from(data, len(MAGIC))
        if len(data) != head + header_len + payload_len:
            return f"{len(data)} bytes but its frame says {head + header_len + payload_len} (truncated)"
        if zlib.crc32(memoryview(data)[head:]) != crc:
            return "checksum mismatch"
        try:
            header = json.loads(data[head : head + header_len])
        except ValueError:
            return "header is not JSON"
        if header.get("actor_id") != self.actor_id or header.get("first_seq") != first or header.get("n") != n:
            return f"header {header.get('actor_id')}[{header.get('first_seq')}:+{header.get('n')}] != its name"
        return None

    def _move_aside(self, path: Path, kind: str, why: str) -> None:
        target = path.with_name(path.name + ".corrupt")
        index = 1
        while target.exists():
            target = path.with_name(f"{path.name}.{index}.corrupt")
            index += 1
        os.replace(path, target)
        self.stats[kind] += 1
        log.error("spool %s: %s: %s; moved to %s", self.directory, path.name, why, target.name)

    def _write_state(self, next_seq: int) -> None:
        state = {"format": 1, "actor_id": self.actor_id, "next_seq": next_seq}
        _write_atomic(self.directory / STATE_FILE, json.dumps(state).encode())

    # -- API ------------------------------------------------------------------------------------------
    def append(self, batch: TransitionBatch) -> None:
        """Store ``batch`` durably; it must continue the sequence (``batch.first_seq == next_seq``)."""
        if batch.actor_id != self.actor_id:
            raise ValueError(f"batch of actor {batch.actor_id!r} appended to the spool of {self.actor_id!r}")
        if batch.first_seq != self.next_seq:
            raise ValueError(f"spool expects first_seq {self.next_seq}, got {batch.first_seq}")
        header, payload = encode(batch)
        crc = zlib.crc32(payload, zlib.crc32(header))
        data = b"".join([MAGIC, _FRAME.pack(len(header), len(payload), crc), header, payload])
        path = self.directory / f"{batch.first_seq:020d}-{len(batch):09d}.seg"
        _write_atomic(path, data)
        self._segments.append(_Segment(batch.first_seq, len(batch), path, len(data)))
        self._firsts.append(batch.first_seq)
        self.next_seq = batch.end_seq
        self._cache[batch.first_seq] = batch
        self._cache_rows += len(batch)
        while self._cache_rows > CACHE_ROWS and len(self._cache) > 1:
            self._cache_rows -= len(self._cache.popitem(last=False)[1])

    def advance(self, next_seq: int) -> None:
        """Skip seqs up to ``next_seq`` (the learner already holds them from an earlier life of this actor)."""
        if next_seq > self.next_seq:
            self._write_state(next_seq)
            self.next_seq = next_seq

    def _load(self, segment: _Segment) -> TransitionBatch | None:
        cached = self._cache.get(segment.first_seq)
        if cached is not None:
            return cached
        problem = self._verify(segment.path, segment.first_seq, segment.n) if segment.path.exists() else "missing"
        if problem is None:
            data = segment.path.read_bytes()
            header_len, _, _ = _FRAME.unpack_from(data, len(MAGIC))
            head = len(MAGIC) + _FRAME.size
            try:
                batch = decode([data[head : head + header_len], data[head + header_len :]], max_bytes=len(data))
                if isinstance(batch, TransitionBatch):
                    return batch
                problem = f"holds a {type(batch).__name__}"
            except ProtocolError as err:
                problem = str(err)
        # Went bad after the spool was opened (disk error): drop it from the index, keep the file for inspection.
        if segment.path.exists():
            self._move_aside(segment.path, "corrupt", problem)
        else:
            self.stats["corrupt"] += 1
        self.stats["lost_rows"] += segment.n
        index = self._segments.index(segment)
        del self._segments[index], self._firsts[index]
        return None

    def read_from(self, seq: int, max_transitions: int) -> TransitionBatch | None:
        """Up to ``max_transitions`` contiguous rows, starting at the first stored row with seq >= ``seq``."""
        while True:
            index = max(bisect.bisect_right(self._firsts, seq) - 1, 0)
            while index < len(self._segments) and self._segments[index].end_seq <= seq:
                index += 1
            if index >= len(self._segments):
                return None
            parts: list[TransitionBatch] = []
            count, cursor, broken = 0, None, False
            for segment in self._segments[index:]:
                if count >= max_transitions or (cursor is not None and segment.first_seq != cursor):
                    break
                batch = self._load(segment)
                if batch is None:
                    broken = True
                    break
                start = max(seq - batch.first_seq, 0)
                stop = min(len(batch), start + max_transitions - count)
                parts.append(batch if (start, stop) == (0, len(batch)) else batch.slice(start, stop))
                count += stop - start
                cursor = segment.end_seq
            if parts:
                return TransitionBatch.concat(parts)
            if not broken:
                return None

    def prune(self, committed: int) -> int:
        """Delete segments whose rows are all below ``committed``; returns the number of rows removed."""
        if not self._segments or self._segments[0].end_seq > committed:
            return 0  # the common case (called on every ack): nothing to do, in O(1)
        doomed = [s for s in self._segments if s.end_seq <= committed]
        self._write_state(self.next_seq)  # the sequence must survive even if nothing is left on disk
        for segment in doomed:
            segment.path.unlink(missing_ok=True)
            if self._cache.pop(segment.first_seq, None) is not None:
                self._cache_rows -= segment.n
        self._segments = self._segments[len(doomed) :]
        self._firsts = self._firsts[len(doomed) :]
        rows = sum(s.n for s in doomed)
        self.stats["pruned"] += rows
        return rows

    def pending(self, committed: int) -> int:
        """Transitions on disk with seq >= ``committed``."""
        return sum(s.end_seq - max(s.first_seq, committed) for s in self._segments if s.end_seq > committed)

    @property
    def first_seq(self) -> int | None:
        """Seq of the oldest row on disk, or None when the spool is empty."""
        return self._segments[0].first_seq if self._segments else None

    @property
    def bytes_on_disk(self) -> int:
        """Total size of the valid segments."""
        return sum(s.size for s in self._segments)
