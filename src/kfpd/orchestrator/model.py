"""What the orchestrator reads about tasks: parameters, artifacts, siblings (not rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kfpd.domain.enums import ArtifactType, IOType, TaskState, TaskType
from kfpd.domain.schema_titles import SCHEMA_TITLE_KEY, schema_title_for


@dataclass(frozen=True)
class ArtifactRef:
    artifact_id: str
    name: str
    uri: str
    type: ArtifactType
    metadata: dict[str, Any] = field(default_factory=dict)
    number_value: float | None = None

    @property
    def schema_title(self) -> str:
        stored = self.metadata.get(SCHEMA_TITLE_KEY)
        if isinstance(stored, str) and stored:
            return stored
        return schema_title_for(self.type)


@dataclass(frozen=True)
class Param:
    """One parameter entry as recorded on a task (inputs.parameters / outputs.parameters)."""

    key: str
    value: Any
    io_type: IOType
    producer: str | None = None
    iteration: int | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "value": self.value,
            "type": self.io_type.name,
            "parameter_key": self.key,
        }
        if self.producer is not None:
            producer: dict[str, Any] = {"task_name": self.producer}
            if self.iteration is not None:
                producer["iteration"] = str(self.iteration)
            entry["producer"] = producer
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Param:
        producer = entry.get("producer") or {}
        iteration = producer.get("iteration")
        return cls(
            key=str(entry.get("parameter_key") or ""),
            value=entry.get("value"),
            io_type=IOType.parse(entry.get("type") or 0),  # type: ignore[arg-type]
            producer=producer.get("task_name"),
            iteration=int(iteration) if iteration is not None else None,
        )


@dataclass(frozen=True)
class ArtifactIO:
    """Artifacts under one key of a task, with the link's IO type and producer."""

    key: str
    artifacts: tuple[ArtifactRef, ...]
    io_type: IOType
    producer: str | None = None
    iteration: int | None = None


@dataclass
class TaskOutputs:
    params: list[Param] = field(default_factory=list)
    artifacts: list[ArtifactIO] = field(default_factory=list)


@dataclass
class Sibling:
    """A task of the same DAG instance, as consumers see it."""

    task_id: str
    name: str
    type: TaskType
    state: TaskState
    outputs: TaskOutputs
    message: str = ""
    iteration_count: int | None = None
