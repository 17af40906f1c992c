"""Writes that a crash or a kill cannot leave half done: write beside the target, fsync, rename, fsync the folder.

After an interrupted write the target is either the previous file or the new one, never a prefix of it; the
temporary file is named so a reader never mistakes it for a target (``.<name>.tmp-<id>`` unless the caller
chooses a name it recovers from, as the fine-tuning spool does).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "fsync_path", "replacing"]


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory (a rename is durable once its directory is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: str | Path, tmp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends normally, the file written there is fsynced
    and renamed onto ``path``. On an exception ``path`` is untouched and the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(tmp_name or f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink()


def atomic_write(path: str | Path, data: bytes | str, tmp_name: str | None = None) -> Path:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8) in one rename; returns ``path``."""
    with replacing(path, tmp_name) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)
