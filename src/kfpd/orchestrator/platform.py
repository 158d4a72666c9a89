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

from kfpd.ir import EnvFromStore, KubernetesConfig, ParameterInput
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
    entries: tuple[EnvFromStore, ...],
    *,
    store: LocalStore,
    resolve: Callable[[ParameterInput], Any],
) -> list[tuple[str, str]]:
    env: list[tuple[str, str]] = []
    for entry in entries:
        name: Any = entry.name
        if entry.name_parameter is not None:
            name = resolve(entry.name_parameter)
        if not name:
            if entry.optional:
                continue
            raise ResolveError(f"a {store.kind} for environment variables has no name")
        values = store.get(str(name))
        if values is None:
            if entry.optional:
                continue
            where = f"{store.root}/{name}.json" if store.root else "(no local store configured)"
            raise ResolveError(f"{store.kind} {name!r} not found: put it in {where}")
        for mapping in entry.keys:
            if mapping.key not in values:
                if entry.optional:
                    continue
                raise ResolveError(f"{store.kind} {name!r} has no key {mapping.key!r}")
            env.append((mapping.env_var, values[mapping.key]))
    return env


def local_env(
    config: KubernetesConfig,
    *,
    pod: Pod,
    secrets: LocalStore,
    config_maps: LocalStore,
    resolve: Callable[[ParameterInput], Any],
) -> list[tuple[str, str]]:
    """Environment variables the platform config gives the task's container."""
    env: list[tuple[str, str]] = []
    for item in config.field_path_env:
        path = item.field_path
        value = ""
        match = _FIELD.match(path)
        if match:
            found = config.labels if match.group(1) == "labels" else config.annotations
            value = found.get(match.group(2), "")
        elif path == "metadata.name":
            value = pod.name
        elif path == "metadata.namespace":
            value = pod.namespace
        elif path == "metadata.uid":
            value = pod.uid
        env.append((item.name, value))
    env += _from_store(config.secret_env, store=secrets, resolve=resolve)
    env += _from_store(config.config_map_env, store=config_maps, resolve=resolve)
    return [(k, v) for k, v in env if k]


def resolved_config(
    config: KubernetesConfig, resolve: Callable[[ParameterInput], Any]
) -> dict[str, Any]:
    """The executor config in the LaunchSpec's wire form (plain JSON), every parameter source
    replaced by its value (None: no value), so an executor that builds pods needs no access to
    the run's other tasks. The config is free-form here: executors read what they support."""

    def walk(value: Any) -> Any:
        if isinstance(value, ParameterInput):
            return resolve(value)
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return [walk(v) for v in value]
        return value

    return {k: walk(v) for k, v in config.pod_config.items()}
