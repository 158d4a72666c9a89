"""The parts of a task's Kubernetes platform config that mean something on a local host.

Honoured: ``podMetadata`` with ``fieldPathAsEnv`` (labels, annotations, pod name, namespace),
``secretAsEnv`` and ``configMapAsEnv`` from a local store of secrets and config maps (one
JSON object per name, ``<dir>/<name>.json``). Everything else (volumes, node selectors,
tolerations, image pull secrets...) has no local meaning and is ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfpd.orchestrator.resolve import ResolveError

_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    uid: str


class LocalStore:
    """Secrets or config maps as JSON files: ``<root>/<name>.json`` = {key: value}."""

    def __init__(self, root: Path | None, kind: str) -> None:
        self.root = root
        self.kind = kind

    def get(self, name: str) -> dict[str, str] | None:
        if self.root is None or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            return None
        path = self.root / f"{name}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ResolveError(f"{self.kind} {name!r}: {path} is not a JSON object: {exc}") from exc
        if not isinstance(data, dict):
            raise ResolveError(f"{self.kind} {name!r}: {path} is not a JSON object")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def _from_store(
    entries: list[dict[str, Any]],
    *,
    store: LocalStore,
    name_key: str,
    value_key: str,
    resolve: Callable[[dict[str, Any]], Any],
) -> list[tuple[str, str]]:
    env: list[tuple[str, str]] = []
    for entry in entries:
        name = entry.get(name_key)
        source = entry.get(f"{name_key}Parameter")
        if source:
            name = resolve(source)
        optional = bool(entry.get("optional"))
        if not name:
            if optional:
                continue
            raise ResolveError(f"a {store.kind} for environment variables has no name")
        values = store.get(str(name))
        if values is None:
            if optional:
                continue
            where = f"{store.root}/{name}.json" if store.root else "(no local store configured)"
            raise ResolveError(f"{store.kind} {name!r} not found: put it in {where}")
        for mapping in entry.get("keyToEnv") or []:
            key = mapping.get(value_key, "")
            if key not in values:
                if optional:
                    continue
                raise ResolveError(f"{store.kind} {name!r} has no key {key!r}")
            env.append((mapping.get("envVar", ""), values[key]))
    return env


def local_env(
    config: Mapping[str, Any],
    *,
    pod: Pod,
    secrets: LocalStore,
    config_maps: LocalStore,
    resolve: Callable[[dict[str, Any]], Any],
) -> list[tuple[str, str]]:
    """Environment variables the platform config gives the task's container."""
    metadata = config.get("podMetadata") or {}
    labels: dict[str, str] = metadata.get("labels") or {}
    annotations: dict[str, str] = metadata.get("annotations") or {}
    env: list[tuple[str, str]] = []
    for item in config.get("fieldPathAsEnv") or []:
        path = item.get("fieldPath", "")
        value = ""
        match = _FIELD.match(path)
        if match:
            value = (labels if match.group(1) == "labels" else annotations).get(match.group(2), "")
        elif path == "metadata.name":
            value = pod.name
        elif path == "metadata.namespace":
            value = pod.namespace
        elif path == "metadata.uid":
            value = pod.uid
        env.append((item.get("name", ""), str(value)))
    env += _from_store(
        config.get("secretAsEnv") or [],
        store=secrets,
        name_key="secretName",
        value_key="secretKey",
        resolve=resolve,
    )
    env += _from_store(
        config.get("configMapAsEnv") or [],
        store=config_maps,
        name_key="configMapName",
        value_key="configMapKey",
        resolve=resolve,
    )
    return [(k, v) for k, v in env if k]


# A kfp-kubernetes field given as a parameter: {componentInputParameter: ...} and the like.
_SOURCE_KEYS = {"componentInputParameter", "taskOutputParameter", "runtimeValue", "taskFinalStatus"}


def resolved_config(config: Mapping[str, Any], resolve: Callable[[dict[str, Any]], Any]) -> Any:
    """The executor config with every parameter source replaced by its value (None: no value),
    so an executor that builds pods needs no access to the run's other tasks."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if value and set(value) <= _SOURCE_KEYS:
                return resolve(value)
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(dict(config))
