"""A task's log: written to a local file, streamed to the server in chunks, optionally teed.

Streaming never fails the task: a chunk the server did not take stays pending and goes with
the next one (bounded; the oldest text is dropped with a marker if the server stays away).

The log is capped (``KFPD_TASK_LOG_MAX_BYTES``, default 32 MiB): the first half of the budget
is written and streamed as it comes, the last half is kept in memory as a rolling tail and
written at the end after a line saying how many bytes were dropped between them.
"""

from __future__ import annotations

import codecs
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

STREAM_INTERVAL = 0.5  # seconds between chunks sent to the server
MAX_CHUNK = 512 * 1024  # send early once this much is waiting
MAX_PENDING = 8 * 1024 * 1024
TAIL_BYTES = 4096
MAX_LOG_BYTES_ENV = "KFPD_TASK_LOG_MAX_BYTES"
DEFAULT_MAX_LOG_BYTES = 32 * 1024 * 1024


def max_log_bytes() -> int:
    """The per-task log cap from the environment (0 or less: no cap)."""
    try:
        return int(os.environ.get(MAX_LOG_BYTES_ENV, DEFAULT_MAX_LOG_BYTES))
    except ValueError:
        return DEFAULT_MAX_LOG_BYTES


class LogSink:
    def __init__(
        self,
        path: Path,
        send: Callable[[str], bool] | None,
        *,
        tee: BinaryIO | None = None,
        interval: float = STREAM_INTERVAL,
        max_bytes: int | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("wb")
        self._send = send
        self._tee = tee
        self._interval = interval
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending: list[str] = []
        self._pending_chars = 0
        self._last_sent = time.monotonic()
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0
        limit = max_log_bytes() if max_bytes is None else max_bytes
        self._cap_bytes = limit
        self._head_left = limit - limit // 2 if limit > 0 else -1  # -1: no cap
        self._kept_tail = _RollingTail(limit // 2) if limit > 0 else None
        self._dropped = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._tee is not None:
            self._tee.write(data)
            self._tee.flush()
        self._remember(data)
        announce = False
        if self._head_left >= 0:
            data, announce = self._cap(data)
        if data:
            self._file.write(data)
            if self._send is not None:
                text = self._decoder.decode(data)
                if text:
                    self._queue(text)
                    if self._pending_chars > MAX_PENDING:
                        self._drop_oldest()
        if announce:
            self._queue(
                "\n[kfpd] the log reached half its cap: the rest is not streamed; its last "
                "part is kept and added when the task ends\n"
            )

    def _cap(self, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` that still fits the head (the rest goes to the rolling tail),
        and whether this is the first byte past the head."""
        head, rest = data[: self._head_left], data[self._head_left :]
        self._head_left -= len(head)
        first = False
        if rest and self._kept_tail is not None:
            first = not self._dropped and not self._kept_tail.size
            self._dropped += self._kept_tail.add(rest)
        return head, first

    def _queue(self, text: str) -> None:
        if self._send is not None:
            self._pending.append(text)
            self._pending_chars += len(text)

    def note(self, message: str) -> None:
        """A line from kfpd itself (not from the task's command)."""
        self.write(f"[kfpd] {message}\n".encode())

    def seconds_until_due(self) -> float:
        if not self._pending:
            return self._interval
        return max(0.0, self._last_sent + self._interval - time.monotonic())

    def tick(self) -> None:
        """Send what is waiting if the interval has passed or much is waiting."""
        if self._pending and (self._pending_chars >= MAX_CHUNK or self.seconds_until_due() <= 0.0):
            self.send_pending()

    def send_pending(self) -> None:
        if not self._file.closed:
            self._file.flush()
        self._last_sent = time.monotonic()
        if self._send is None or not self._pending:
            return
        text = "".join(self._pending)
        if self._send(text):
            self._pending.clear()
            self._pending_chars = 0
        else:
            self._pending = [text]

    def close(self) -> str:
        """Close the file; return the text not sent yet (it goes with the final report)."""
        if self._kept_tail is not None and self._kept_tail.size:
            self._head_left = -1  # what follows is written whole
            self._file.write(
                f"\n[kfpd] {self._dropped} bytes of output dropped here (log cap "
                f"{self._cap_bytes} bytes: its first and last halves are kept; "
                f"{MAX_LOG_BYTES_ENV})\n".encode()
            )
            self._file.write(self._kept_tail.data())
        self._file.close()
        if self._send is None:
            return ""
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._pending.append(rest)
            self._pending_chars += len(rest)
        if self._pending_chars > MAX_CHUNK:
            self.send_pending()
        text = "".join(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        return text

    def tail(self, max_lines: int = 20) -> str:
        text = b"".join(self._tail).decode("utf-8", "replace")
        lines = text.rstrip("\n").splitlines()
        return "\n".join(lines[-max_lines:])

    def _remember(self, data: bytes) -> None:
        self._tail.append(data[-TAIL_BYTES:])
        self._tail_bytes += len(self._tail[-1])
        while self._tail_bytes - len(self._tail[0]) >= TAIL_BYTES:
            self._tail_bytes -= len(self._tail.popleft())

    def _drop_oldest(self) -> None:
        text = "".join(self._pending)
        keep = text[-(MAX_PENDING // 2) :]
        dropped = len(text) - len(keep)
        self._pending = [
            f"[kfpd] {dropped} characters of log not sent (server unreachable)\n",
            keep,
        ]
        self._pending_chars = sum(len(p) for p in self._pending)


class _RollingTail:
    """The last ``capacity`` bytes written, in memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.chunks: deque[bytes] = deque()
        self.size = 0

    def add(self, data: bytes) -> int:
        """Keep ``data``; return how many older bytes fell out."""
        kept = data[-self.capacity :] if self.capacity else b""
        dropped_now = len(data) - len(kept)
        data = kept
        self.chunks.append(data)
        self.size += len(data)
        while self.size > self.capacity:
            first = self.chunks[0]
            excess = self.size - self.capacity
            if len(first) <= excess:
                self.chunks.popleft()
                self.size -= len(first)
                dropped_now += len(first)
            else:
                self.chunks[0] = first[excess:]
                self.size -= excess
                dropped_now += excess
        return dropped_now

    def data(self) -> bytes:
        return b"".join(self.chunks)
