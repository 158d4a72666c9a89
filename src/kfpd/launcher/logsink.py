"""A task's log: written to a local file, streamed to the server in chunks, optionally teed.

Streaming never fails the task: a chunk the server did not take stays pending and goes with
the next one (bounded; the oldest text is dropped with a marker if the server stays away).
"""

from __future__ import annotations

import codecs
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

STREAM_INTERVAL = 0.5  # seconds between chunks sent to the server
MAX_CHUNK = 512 * 1024  # send early once this much is waiting
MAX_PENDING = 8 * 1024 * 1024
TAIL_BYTES = 4096


class LogSink:
    def __init__(
        self,
        path: Path,
        send: Callable[[str], bool] | None,
        *,
        tee: BinaryIO | None = None,
        interval: float = STREAM_INTERVAL,
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

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._file.write(data)
        if self._tee is not None:
            self._tee.write(data)
            self._tee.flush()
        self._remember(data)
        if self._send is not None:
            text = self._decoder.decode(data)
            if text:
                self._pending.append(text)
                self._pending_chars += len(text)
                if self._pending_chars > MAX_PENDING:
                    self._drop_oldest()

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
