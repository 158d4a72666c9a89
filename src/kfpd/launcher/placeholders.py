"""The executor input and placeholder substitution for a container's command and args.

Supported: ``{{$}}`` (the ExecutorInput JSON), ``{{$.inputs.parameters['x']}}``,
``{{$.inputs|outputs.artifacts['x']}}`` (the artifact list as JSON) with ``.path``, ``.uri``,
``.metadata`` and ``.metadata['k']``, ``{{$.outputs.parameters['x'].output_file}}``,
``{{$.outputs.output_file}}``, ``{{$.outputMetadataUri}}``, ``{{$.pipeline_root}}``,
``{{$.pipeline_job_name|resource_name|uuid|create_time_utc|schedule_time_utc}}``,
``{{$.pipeline_task_name|uuid}}``, ``{{$.workspace_path}}``, and the JSON structures
``{"Concat": [...]}`` and ``{"IfPresent": {"InputName", "Then", "Else"}}`` (nested freely).

Values are inserted as text: strings as they are, everything else as compact JSON. In the
ExecutorInput an artifact's ``uri`` is its local path, which is what the KFP Python executor
turns into ``.path``; the ``.uri`` placeholder gives the artifact's real URI.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kfpd.schemas.launch import LaunchSpec

_PLACEHOLDER = re.compile(r"\{\{\$(.*?)\}\}")
_NAME = r"\[(?:'([^']*)'|\"([^\"]*)\")\]"
_IO = re.compile(r"^\.(inputs|outputs)\.(parameters|artifacts)" + _NAME + r"(.*)$")
_ARTIFACT_SUFFIX = re.compile(r"^(?:\.(path|uri|metadata)(?:" + _NAME + r")?)?$")
_STRUCT_KEYS = ("Concat", "IfPresent")


class PlaceholderError(Exception):
    pass


@dataclass
class LocalArtifact:
    """An artifact as the task sees it: its real URI and the local path standing for it."""

    name: str
    uri: str
    path: str
    schema_title: str = "system.Artifact"
    schema_version: str = "0.0.1"
    metadata: dict[str, Any] = field(default_factory=dict)

    def runtime_artifact(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": {"schemaTitle": self.schema_title, "schemaVersion": self.schema_version},
            "uri": self.path,
            "metadata": self.metadata,
        }


@dataclass
class TaskFiles:
    """Everything placeholders can point at for one task."""

    spec: LaunchSpec
    input_artifacts: dict[str, list[LocalArtifact]]
    output_artifacts: dict[str, LocalArtifact]
    parameter_files: dict[str, str]  # output parameter -> the file the task may write
    output_file: str  # where the task may write its ExecutorOutput JSON

    def executor_input(self) -> dict[str, Any]:
        return {
            "inputs": {
                "parameterValues": dict(self.spec.parameter_values),
                "artifacts": {
                    key: {"artifacts": [a.runtime_artifact() for a in arts]}
                    for key, arts in self.input_artifacts.items()
                },
            },
            "outputs": {
                "parameters": {
                    key: {"outputFile": path} for key, path in self.parameter_files.items()
                },
                "artifacts": {
                    key: {"artifacts": [art.runtime_artifact()]}
                    for key, art in self.output_artifacts.items()
                },
                "outputFile": self.output_file,
            },
        }


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _run_values(spec: LaunchSpec) -> dict[str, str]:
    return {
        ".pipeline_root": spec.pipeline_root,
        ".pipeline_job_name": spec.run_display_name or spec.run_id,
        ".pipeline_job_resource_name": spec.run_resource_name or spec.run_id,
        ".pipeline_job_uuid": spec.run_id,
        ".pipeline_job_create_time_utc": spec.run_create_time,
        ".pipeline_job_schedule_time_utc": spec.run_schedule_time or spec.run_create_time,
        ".pipeline_task_name": spec.task_name,
        ".pipeline_task_uuid": spec.task_id,
    }


def resolve_parameter_references(spec: LaunchSpec) -> dict[str, Any]:
    """String parameter values may name other inputs (f-strings in a pipeline) or run values;
    those references are filled in. Unknown references stay as they are."""
    values = dict(spec.parameter_values)
    run_values = _run_values(spec)

    def substitute(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr in run_values:
            return run_values[expr]
        io = _IO.match(expr)
        if io and io.group(1, 2) == ("inputs", "parameters") and not io.group(5):
            name = io.group(3) if io.group(3) is not None else io.group(4)
            if name in values and values[name] is not None:
                return as_text(values[name])
        return match.group(0)

    for _ in range(8):  # references may chain; a bounded number of passes ends cycles
        changed = False
        for key, value in values.items():
            if isinstance(value, str) and "{{$." in value:
                new = _PLACEHOLDER.sub(substitute, value)
                if new != value:
                    values[key], changed = new, True
        if not changed:
            break
    return values


class Resolver:
    """Substitutes placeholders for one task."""

    def __init__(self, files: TaskFiles) -> None:
        self.files = files
        self.spec = files.spec
        self._run_values = _run_values(files.spec)
        self._executor_input: str | None = None

    # -- command lines

    def command_line(self, items: list[str]) -> list[str]:
        out: list[str] = []
        for item in items:
            out.extend(self._expand(_structure(item)))
        return out

    def _expand(self, node: Any) -> list[str]:
        """A node at argument level: a structure may stand for zero or several arguments."""
        if isinstance(node, str):
            return [self.text(node)]
        if isinstance(node, list):
            return [arg for child in node for arg in self._expand(_structure(child))]
        if isinstance(node, dict) and len(node) == 1:
            if "Concat" in node:
                items = node["Concat"]
                if not isinstance(items, list):
                    raise PlaceholderError(f"Concat needs a list, got {items!r}")
                return ["".join(self._join(_structure(i)) for i in items)]
            if "IfPresent" in node:
                return self._expand(self._branch(node["IfPresent"]))
        raise PlaceholderError(f"unknown command-line structure {node!r}")

    def _join(self, node: Any) -> str:
        return "".join(self._expand(node))

    def _branch(self, body: Any) -> Any:
        if not isinstance(body, dict) or "InputName" not in body:
            raise PlaceholderError(f"IfPresent needs an InputName, got {body!r}")
        branch = body.get("Then") if self.is_present(body["InputName"]) else body.get("Else")
        return [] if branch is None else _structure(branch)

    def is_present(self, name: str) -> bool:
        if self.spec.parameter_values.get(name) is not None:
            return True
        return bool(self.files.input_artifacts.get(name))

    # -- scalar placeholders

    def text(self, value: str) -> str:
        if "{{$" not in value:
            return value
        return _PLACEHOLDER.sub(lambda m: self.placeholder(m.group(1)), value)

    def placeholder(self, expr: str) -> str:
        if expr == "":
            if self._executor_input is None:
                self._executor_input = as_text(self.files.executor_input())
            return self._executor_input
        if expr in self._run_values:
            return self._run_values[expr]
        if expr in (".outputs.output_file", ".outputMetadataUri"):
            return self.files.output_file
        if expr == ".workspace_path":
            if not self.spec.workspace_path:
                raise PlaceholderError("{{$.workspace_path}} is used but the run has no workspace")
            return self.spec.workspace_path
        io = _IO.match(expr)
        if io is None:
            raise PlaceholderError(f"unsupported placeholder {{{{${expr}}}}}")
        direction, kind, quoted, dquoted, rest = io.groups()
        name = quoted if quoted is not None else dquoted
        if kind == "parameters":
            return self._parameter(direction, name, rest, expr)
        return self._artifact(direction, name, rest, expr)

    def _parameter(self, direction: str, name: str, rest: str, expr: str) -> str:
        if direction == "inputs" and rest == "":
            value = self.spec.parameter_values.get(name)
            if value is None:
                raise PlaceholderError(
                    f"input parameter {name!r} has no value (optional and not given; "
                    "use IfPresent for optional inputs)"
                )
            return as_text(value)
        if direction == "outputs" and rest == ".output_file":
            if name not in self.files.parameter_files:
                raise PlaceholderError(f"{name!r} is not an output parameter of this task")
            return self.files.parameter_files[name]
        raise PlaceholderError(f"unsupported placeholder {{{{${expr}}}}}")

    def _artifact(self, direction: str, name: str, rest: str, expr: str) -> str:
        if direction == "inputs":
            artifacts = self.files.input_artifacts.get(name)
            if not artifacts:
                raise PlaceholderError(f"input artifact {name!r} was not given")
        else:
            output = self.files.output_artifacts.get(name)
            if output is None:
                raise PlaceholderError(f"{name!r} is not an output artifact of this task")
            artifacts = [output]
        suffix = _ARTIFACT_SUFFIX.match(rest)
        if suffix is None:
            raise PlaceholderError(f"unsupported placeholder {{{{${expr}}}}}")
        attribute, key, dkey = suffix.groups()
        if attribute is None:
            return as_text({"artifacts": [a.runtime_artifact() for a in artifacts]})
        first = artifacts[0]
        if attribute == "path":
            return first.path
        if attribute == "uri":
            return first.uri
        key = key if key is not None else dkey
        if key is None:
            return as_text(first.metadata)
        if key not in first.metadata:
            raise PlaceholderError(f"artifact {name!r} has no metadata key {key!r}")
        return as_text(first.metadata[key])


def _structure(item: Any) -> Any:
    """A command-line item: a Concat/IfPresent structure (JSON text or parsed) or a string."""
    if isinstance(item, str) and item.startswith("{") and any(k in item for k in _STRUCT_KEYS):
        try:
            parsed = json.loads(item)
        except ValueError:
            return item
        if isinstance(parsed, dict) and len(parsed) == 1 and next(iter(parsed)) in _STRUCT_KEYS:
            return parsed
    return item
