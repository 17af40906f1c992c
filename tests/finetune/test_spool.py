"""The actor's spool on real files: append/read/prune, crash recovery, next_seq persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finetune.spool import STATE_FILE, Spool
from tests.finetune.test_protocol import assert_batches_equal, make_batch


def fill(spool: Spool, sizes: list[int]) -> list:
    batches = []
    for i, n in enumerate(sizes):
        batch = make_batch(n=n, first_seq=spool.next_seq, obs_dim=4, action_dim=2, seed=i)
        spool.append(batch)
        batches.append(batch)
    return batches


def segments(directory):
    return sorted(p.name for p in directory.glob("*.seg"))


def test_append_read_prune(tmp_path):
    spool = Spool(tmp_path, "a1-robot")
    assert spool.next_seq == 0 and spool.read_from(0, 10) is None
    written = fill(spool, [5, 5, 3])
    assert spool.next_seq == 13 and len(segments(tmp_path)) == 3
    everything = spool.read_from(0, 100)
    assert_batches_equal(everything, written[0].__class__.concat([b for b in written]))
    part = spool.read_from(3, 4)  # crosses a segment boundary: seqs 3..6
    assert (part.first_seq, len(part)) == (3, 4)
    np.testing.assert_array_equal(part.obs, everything.obs[3:7])
    assert spool.read_from(13, 10) is None
    assert spool.pending(0) == 13 and spool.pending(7) == 6
    with pytest.raises(ValueError, match="expects first_seq 13"):
        spool.append(make_batch(n=2, first_seq=20, obs_dim=4, action_dim=2))
    assert spool.prune(7) == 5  # only the first segment lies entirely below 7
    assert spool.pending(0) == 8 and spool.first_seq == 5
    assert spool.read_from(0, 3).first_seq == 5  # pruned rows are gone; the reader gets the next stored row
    assert spool.prune(13) == 8 and segments(tmp_path) == []
    assert spool.stats["pruned"] == 13


def test_reads_back_from_disk_after_reopen(tmp_path):
    written = fill(Spool(tmp_path, "a1-robot"), [4, 6])
    reopened = Spool(tmp_path, "a1-robot")
    assert reopened.next_seq == 10 and reopened.stats["segments_ok"] == 2
    assert_batches_equal(reopened.read_from(4, 100), written[1])


def test_next_seq_persists_when_everything_was_pruned(tmp_path):
    spool = Spool(tmp_path, "a1-robot")
    fill(spool, [7, 3])
    spool.prune(10)
    assert segments(tmp_path) == []
    again = Spool(tmp_path, "a1-robot")
    assert again.next_seq == 10 and again.pending(0) == 0
    fill(again, [2])
    assert Spool(tmp_path, "a1-robot").next_seq == 12


def test_partial_temp_file_is_set_aside(tmp_path, caplog):
    spool = Spool(tmp_path, "a1-robot")
    fill(spool, [5])
    # the actor died inside append(): half a segment written to its temp name, never renamed
    data = (tmp_path / segments(tmp_path)[0]).read_bytes()
    (tmp_path / "00000000000000000005-000000005.seg.tmp").write_bytes(data[: len(data) // 2])
    recovered = Spool(tmp_path, "a1-robot")
    assert recovered.stats["partial"] == 1 and recovered.stats["corrupt"] == 0
    assert recovered.next_seq == 5  # those rows were never appended (nor sent): their seqs are reused
    assert len(list(tmp_path.glob("*.corrupt"))) == 1 and "interrupted" in caplog.text
    assert recovered.read_from(0, 10).first_seq == 0 and len(recovered.read_from(0, 10)) == 5


def test_truncated_and_corrupt_segments_are_detected(tmp_path, caplog):
    spool = Spool(tmp_path, "a1-robot")
    written = fill(spool, [4, 4, 4, 4])
    spool.prune(4)  # rows 0-3 are committed (the learner checkpointed them) and pruned
    names = segments(tmp_path)
    truncated, flipped = tmp_path / names[2], tmp_path / names[1]  # seqs 12-15 and 8-11
    truncated.write_bytes(truncated.read_bytes()[:-10])
    raw = bytearray(flipped.read_bytes())
    raw[-20] ^= 0xFF
    flipped.write_bytes(bytes(raw))

    recovered = Spool(tmp_path, "a1-robot")
    assert recovered.stats["corrupt"] == 2 and recovered.stats["lost_rows"] == 8
    assert "truncated" in caplog.text and "checksum" in caplog.text
    assert sorted(p.name for p in tmp_path.glob("*.corrupt")) == sorted(f"{n}.corrupt" for n in names[1:3])
    # the sequence never goes back over a corrupt tail: seqs 12-15 are not reused
    assert recovered.next_seq == 16
    # the intact segment is still served, and the reader skips the hole (the client reports it as Lost)
    assert_batches_equal(recovered.read_from(4, 100), written[1])
    assert recovered.read_from(8, 100) is None
    assert recovered.pending(0) == 4


def test_spool_belongs_to_one_actor(tmp_path):
    Spool(tmp_path, "a1-robot")
    assert json.loads((tmp_path / STATE_FILE).read_text())["actor_id"] == "a1-robot"
    with pytest.raises(ValueError, match="belongs to actor 'a1-robot'"):
        Spool(tmp_path, "another-robot")
    spool = Spool(tmp_path, "a1-robot")
    with pytest.raises(ValueError, match="appended to the spool"):
        spool.append(
            make_batch(n=1, first_seq=0).__class__(**{**make_batch(n=1, first_seq=0).__dict__, "actor_id": "x"})
        )


def test_segment_corrupted_after_open_is_dropped_on_read(tmp_path):
    fill(Spool(tmp_path, "a1-robot"), [3, 3])
    spool = Spool(tmp_path, "a1-robot")  # fresh: nothing cached, reads go to disk
    (tmp_path / segments(tmp_path)[0]).write_bytes(b"garbage")
    batch = spool.read_from(0, 10)
    assert batch.first_seq == 3 and spool.stats["corrupt"] == 1 and spool.stats["lost_rows"] == 3
