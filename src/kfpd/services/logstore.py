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
from urllib.parse import unquote, urlsplit

from kfpd.domain.errors import InvalidArgument

DEFAULT_READ_BYTES = 1024 * 1024
MAX_READ_BYTES = 8 * 1024 * 1024
_CAP_MARKER = b"\n[kfpd] the log reached its cap here; the launcher keeps its end\n"


class LogStore:
    """``max_bytes``: what a task's file may grow to from appends (its head; 0: no cap);
    ``artifact_root``: where launchers on this machine write their own copy (see ``adopt``)."""

    def __init__(
        self, root: Path, *, max_bytes: int = 0, artifact_root: Path | None = None
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.artifact_root = artifact_root

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
            os.write(fd, self._within_cap(os.fstat(fd).st_size, text.encode("utf-8")))
        finally:
            os.close(fd)

    def _within_cap(self, size: int, data: bytes) -> bytes:
        """What of ``data`` to append: room is kept for the marker, written once, which
        brings the file to exactly ``max_bytes``."""
        if not self.max_bytes:
            return data
        room = self.max_bytes - len(_CAP_MARKER) - size
        if len(data) <= room:
            return data
        return data[: max(room, 0)] + _CAP_MARKER if room >= 0 else b""

    def adopt(self, run_id: str, task_id: str, log_uri: str) -> bool:
        """Keep one copy: when the launcher wrote the task's whole log to a local file under the
        artifact root (its executor-logs artifact), the streamed copy is replaced by a link to
        it. Reads then return the launcher's file (head and tail within its cap)."""
        if self.artifact_root is None or not log_uri.startswith("file://"):
            return False
        target = Path(unquote(urlsplit(log_uri).path)).resolve()
        if not target.is_file() or not target.is_relative_to(self.artifact_root.resolve()):
            return False
        path = self.path(run_id, task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        link = path.with_name(f"{path.name}.{os.getpid()}.link")
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        os.replace(link, path)  # atomic: a reader sees the old copy or the link
        return True

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
