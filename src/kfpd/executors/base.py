"""The interface between the engine and whatever runs launcher processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kfpd.schemas.launch import LaunchSpec


@dataclass(frozen=True)
class TaskExit:
    task_id: str
    returncode: int | None
    reason: str | None = None


class Executor(Protocol):
    def submit(self, spec: LaunchSpec, on_exit: Callable[[TaskExit], None]) -> None: ...

    def cancel(self, task_id: str) -> None: ...

    def shutdown(self) -> None: ...
