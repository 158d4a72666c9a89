"""Reading what the task produced: ExecutorOutput, OutputPath files, artifacts and metrics.

Output parameters come from the ExecutorOutput's ``parameterValues`` (native JSON) or, failing
that, from the parameter's output file, parsed by its declared type. Output artifacts take the
URI, metadata and custom path the ExecutorOutput reports; their files are uploaded to their
URI (nothing to do for ``file://``). Metrics live only in metadata: a Metrics output becomes
one artifact per scalar (``number_value``); (Sliced)ClassificationMetrics one artifact each.
As upstream does, an artifact file the task did not write is only a warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfpd.domain.schema_titles import (
    CLASSIFICATION_METRICS,
    METRICS,
    SLICED_CLASSIFICATION_METRICS,
)
from kfpd.launcher.objectstore import ObjectStore, file_uri_path
from kfpd.launcher.placeholders import LocalArtifact, TaskFiles
from kfpd.schemas.launch import OutputArtifact


class OutputError(Exception):
    pass


def read_executor_output(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise OutputError(f"the executor output {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OutputError(f"the executor output {path} is not a JSON object")
    return data


def parse_parameter_text(text: str, ptype: str) -> Any:
    """A parameter value from an output file, by its KFP parameter type."""
    stripped = text.strip()
    if ptype == "NUMBER_INTEGER":
        try:
            return int(stripped)
        except ValueError:
            number = float(stripped)
            if not number.is_integer():
                raise ValueError(f"{stripped!r} is not an integer") from None
            return int(number)
    if ptype == "NUMBER_DOUBLE":
        return float(stripped)
    if ptype == "BOOLEAN":
        lowered = stripped.lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"{stripped!r} is not true or false")
        return lowered == "true"
    if ptype in ("LIST", "STRUCT"):
        value = json.loads(stripped)
        expected = list if ptype == "LIST" else dict
        if not isinstance(value, expected):
            raise ValueError(f"expected a JSON {'array' if ptype == 'LIST' else 'object'}")
        return value
    return text


def _native(value: Any, ptype: str) -> Any:
    if ptype == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _legacy_value(entry: Any) -> Any:
    """A value from the older ``parameters`` map: {stringValue|intValue|doubleValue: v}."""
    if isinstance(entry, dict):
        for field in ("stringValue", "intValue", "doubleValue"):
            if field in entry:
                value = entry[field]
                return int(value) if field == "intValue" else value
    return entry


def collect_parameters(files: TaskFiles, executor_output: dict[str, Any]) -> dict[str, Any]:
    values = executor_output.get("parameterValues") or {}
    legacy = executor_output.get("parameters") or {}
    out: dict[str, Any] = {}
    for name, ptype in files.spec.output_parameters.items():
        if name in values:
            out[name] = _native(values[name], ptype)
            continue
        if name in legacy:
            out[name] = _native(_legacy_value(legacy[name]), ptype)
            continue
        path = Path(files.parameter_files[name])
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise OutputError(
                f"output parameter {name!r} was not produced: no value in the executor output "
                f"and no file at {path}"
            ) from None
        try:
            out[name] = parse_parameter_text(text, ptype)
        except ValueError as exc:
            raise OutputError(f"output parameter {name!r} ({ptype}): {exc}") from None
    return out


def collect_artifacts(
    files: TaskFiles,
    executor_output: dict[str, Any],
    store: ObjectStore,
    warn: Callable[[str], None],
) -> list[OutputArtifact]:
    reported = executor_output.get("artifacts") or {}
    out: list[OutputArtifact] = []
    for key, art in files.output_artifacts.items():
        entries = (reported.get(key) or {}).get("artifacts") or []
        entry: dict[str, Any] = entries[0] if entries else {}
        metadata = {**art.metadata, **(entry.get("metadata") or {})}
        name = entry.get("name") or art.name
        title = art.schema_title
        if title == METRICS:
            out += _metrics(key, metadata)
        elif title in (CLASSIFICATION_METRICS, SLICED_CLASSIFICATION_METRICS):
            out.append(OutputArtifact(key=key, name=name, schema_title=title, metadata=metadata))
        else:
            uri = _store_file(key, art, entry, store, warn)
            out.append(
                OutputArtifact(key=key, name=name, uri=uri, schema_title=title, metadata=metadata)
            )
    return out


def _metrics(key: str, metadata: dict[str, Any]) -> list[OutputArtifact]:
    out = []
    for metric, value in metadata.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OutputError(f"metric {metric!r} of output {key!r} is not a number: {value!r}")
        out.append(
            OutputArtifact(
                key=key,
                name=metric,
                schema_title=METRICS,
                metadata={metric: value},
                number_value=float(value),
            )
        )
    return out


def _store_file(
    key: str,
    art: LocalArtifact,
    entry: dict[str, Any],
    store: ObjectStore,
    warn: Callable[[str], None],
) -> str:
    """Put the artifact's file where its URI says; return the URI to record."""
    reported = entry.get("uri") or art.path
    custom = entry.get("custom_path") or entry.get("customPath")
    if not custom and file_uri_path(reported) is None:
        return str(reported)  # the task pointed it at a URI of its own: record it as is
    source = Path(custom or file_uri_path(reported) or art.path)
    if not source.exists():
        warn(f"output artifact {key!r} was not written (nothing at {source})")
        return art.uri
    store.upload(source, art.uri)
    return art.uri
