"""Task logs as files: ``<root>/<run_id>/<task_id>.log``, appended by launchers while they run.

The store keeps bytes; offsets are byte offsets into the UTF-8 file, so a reader can follow a
log with ``next_offset`` without ever splitting a character (a slice ends before an incomplete
one). Callers check that the run and task exist before touching a path built from their ids.
"""

from __future__ import annotations

import codecs
import os
import shutil
from pathlib import Path

from kfpd.domain.errors import InvalidArgument

DEFAULT_READ_BYTES = 1024 * 1024
MAX_READ_BYTES = 8 * 1024 * 1024


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, run_id: str, task_id: str) -> Path:
        return self.root / run_id / f"{task_id}.log"

    def append(self, run_id: str, task_id: str, text: str) -> None:
        if not text:
            return
        path = self.path(run_id, task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: concurrent appends never overwrite each other.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)

    def delete_run(self, run_id: str) -> None:
        """Remove a deleted run's logs (its tasks are gone, so nothing can read them)."""
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    def read(self, run_id: str, task_id: str, offset: int, limit: int | None) -> tuple[str, int]:
        """Text from byte ``offset`` (at most ``limit`` bytes) and the offset to read next."""
        if offset < 0:
            raise InvalidArgument(f"offset must not be negative, got {offset}")
        limit = DEFAULT_READ_BYTES if limit is None else limit
        if limit <= 0 or limit > MAX_READ_BYTES:
            raise InvalidArgument(f"limit_bytes must be between 1 and {MAX_READ_BYTES}")
        try:
            with self.path(run_id, task_id).open("rb") as f:
                f.seek(offset)
                data = f.read(limit)
        except FileNotFoundError:
            return "", offset
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data, final=False)
        pending = len(decoder.getstate()[0])  # bytes of a character cut off at the end
        return text, offset + len(data) - pending
