"""``python -m pretrain play``: a video a person can watch of the committed reference following commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from a1_common.cli import UsageError
from pretrain.play import parse_sequence


def test_sequence_syntax():
    assert parse_sequence("3:0.5,0,0 2:0,0,-1") == ((3.0, (0.5, 0.0, 0.0)), (2.0, (0.0, 0.0, -1.0)))
    for bad in ("3:0.5,0", "x:0,0,0", "0:0,0,0", ""):
        with pytest.raises(UsageError):
            parse_sequence(bad)


def test_play_writes_a_video_of_the_reference(tmp_path):
    cmd = [sys.executable, "-m", "pretrain", "play", "pretrain/reference_policy", "--out", str(tmp_path),
           "--sequence", "0.6:0.5,0,0 0.4:0,0,1", "--size", "160", "120"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    videos = list(tmp_path.glob("play.*"))
    assert len(videos) == 1 and videos[0].suffix in (".mp4", ".gif") and videos[0].stat().st_size > 1000
    assert str(videos[0]) in res.stdout and "1 s" in res.stdout
