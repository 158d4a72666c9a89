"""Enums of the KFP v2beta1 API, with the wire numbers upstream uses.

kfpd extensions (documented in docs/api.md): ``TaskType.LOOP_ITERATION`` (9) and
``TaskState.CANCELED`` (6). Upstream left iterations untyped and has no way to
mark a task that a terminated run stopped.
"""

from __future__ import annotations

from enum import IntEnum


class WireEnum(IntEnum):
    """An enum sent by name on the wire and accepted by name or number."""

    @classmethod
    def parse(cls, value: object) -> WireEnum:
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            raise ValueError(f"invalid {cls.__name__}: {value!r}")
        if isinstance(value, int):
            return cls(value)
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit():
                return cls(int(text))
            try:
                return cls[text]
            except KeyError:
                pass
        names = ", ".join(m.name for m in cls)
        raise ValueError(f"invalid {cls.__name__} {value!r}; expected one of: {names}")


class RunState(WireEnum):
    RUNTIME_STATE_UNSPECIFIED = 0
    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    SKIPPED = 4
    FAILED = 5
    CANCELING = 6
    CANCELED = 7
    PAUSED = 8

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATES


TERMINAL_RUN_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.SKIPPED, RunState.FAILED, RunState.CANCELED}
)


class TaskState(WireEnum):
    RUNTIME_STATE_UNSPECIFIED = 0
    RUNNING = 1
    SUCCEEDED = 2
    SKIPPED = 3
    FAILED = 4
    CACHED = 5
    CANCELED = 6  # kfpd extension
    PENDING = 7  # kfpd extension: launched, waiting for a free executor slot

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_TASK_STATES


TERMINAL_TASK_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.SKIPPED, TaskState.FAILED, TaskState.CACHED, TaskState.CANCELED}
)
# States a finished task may serve a later run from (retry reuse, cache sources).
REUSABLE_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.CACHED, TaskState.SKIPPED})


class TaskType(WireEnum):
    TASK_TYPE_UNSPECIFIED = 0
    ROOT = 1
    RUNTIME = 2
    CONDITION_BRANCH = 3
    CONDITION = 4
    LOOP = 5
    EXIT_HANDLER = 6
    IMPORTER = 7
    DAG = 8
    LOOP_ITERATION = 9  # kfpd extension


# Task types whose children form a DAG of the pipeline spec.
GROUP_TASK_TYPES = frozenset(
    {
        TaskType.ROOT,
        TaskType.DAG,
        TaskType.CONDITION,
        TaskType.CONDITION_BRANCH,
        TaskType.EXIT_HANDLER,
        TaskType.LOOP,
        TaskType.LOOP_ITERATION,
    }
)


class TaskPodType(WireEnum):
    UNSPECIFIED = 0
    DRIVER = 1
    EXECUTOR = 2


class IOType(WireEnum):
    UNSPECIFIED = 0
    COMPONENT_DEFAULT_INPUT = 1
    TASK_OUTPUT_INPUT = 2
    COMPONENT_INPUT = 3
    RUNTIME_VALUE_INPUT = 4
    COLLECTED_INPUTS = 5
    ITERATOR_INPUT = 6
    ITERATOR_INPUT_RAW = 7
    ITERATOR_OUTPUT = 8
    OUTPUT = 9
    ONE_OF_OUTPUT = 10
    TASK_FINAL_STATUS_OUTPUT = 11

    @property
    def is_output(self) -> bool:
        return self in OUTPUT_IO_TYPES


OUTPUT_IO_TYPES = frozenset(
    {IOType.ITERATOR_OUTPUT, IOType.OUTPUT, IOType.ONE_OF_OUTPUT, IOType.TASK_FINAL_STATUS_OUTPUT}
)


class ArtifactType(WireEnum):
    TYPE_UNSPECIFIED = 0
    Artifact = 1
    Model = 2
    Dataset = 3
    HTML = 4
    Markdown = 5
    Metric = 6
    ClassificationMetric = 7
    SlicedClassificationMetric = 8


class StorageState(WireEnum):
    STORAGE_STATE_UNSPECIFIED = 0
    AVAILABLE = 1
    ARCHIVED = 2


class ViewMode(WireEnum):
    DEFAULT = 0
    FULL = 1


class RecurringRunMode(WireEnum):
    """What a create asks for (upstream: unspecified means disabled)."""

    MODE_UNSPECIFIED = 0
    ENABLE = 1
    DISABLE = 2


class RecurringRunStatus(WireEnum):
    STATUS_UNSPECIFIED = 0
    ENABLED = 1
    DISABLED = 3
