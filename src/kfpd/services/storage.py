"""The server's object storage: pipeline roots, per-task sessions for launchers, reading bytes.

One ``Storage`` per server, built from the launcher configuration (upstream's ``kfp-launcher``
ConfigMap data), kfpd's local secrets and the server's environment. It

- picks a run's pipeline root (run's runtime_config.pipeline_root, else defaultPipelineRoot,
  else the local artifact directory);
- grants a running task's launcher the sessions (fsspec options with credentials) for exactly
  the remote URIs the task owns: its own outputs (under its output prefix) and the artifacts
  linked to it as inputs. The reply is the only place credentials travel; nothing is stored;
- opens any artifact URI for the UI and API (``locate``): local paths as ``file`` filesystems,
  remote ones with the provider that serves them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, ArtifactTask, Run
from kfpd.domain.enums import RunState, TaskState
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound, TaskIsFinal
from kfpd.orchestrator.launch import output_prefix
from kfpd.orchestrator.platform import LocalStore
from kfpd.schemas.launch import StorageSession, StorageSessions
from kfpd.services import tasks as tasks_svc
from kfpd.services.artifacts import PRODUCER_LINK_TYPES, uri_hash
from kfpd.storage.launcher_config import (
    LauncherConfig,
    SessionInfo,
    StorageConfigError,
    is_remote,
    load_launcher_config,
    pipeline_root,
    session_info,
)
from kfpd.storage.sessions import SecretLookup, StoreSession, fs_path, store_session


class Storage:
    def __init__(
        self,
        config: LauncherConfig,
        *,
        local_root: str,
        secrets: SecretLookup,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.local_root = local_root
        self._secrets = secrets
        self._env = os.environ if env is None else env
        self._filesystems: dict[str, Any] = {}

    @classmethod
    def from_settings(
        cls, config: LauncherConfig, local_root: str, secrets_dir: Path | None
    ) -> Storage:
        store = LocalStore(secrets_dir, "secret")
        return cls(config, local_root=local_root, secrets=store.get)

    @classmethod
    def for_server(
        cls, launcher_config: Path | None, artifact_root: Path, secrets_dir: Path | None
    ) -> Storage:
        """The server's storage: ``--launcher-config`` (a bad file raises
        StorageConfigError), the local artifact directory, the local secrets store."""
        config = LauncherConfig()
        if launcher_config is not None:
            config = load_launcher_config(launcher_config)
        return cls.from_settings(config, artifact_root.resolve().as_uri(), secrets_dir)

    @property
    def default_root(self) -> str:
        return pipeline_root(None, self.config, self.local_root)

    def run_root(self, runtime_config: Mapping[str, Any] | None) -> str:
        return pipeline_root(
            (runtime_config or {}).get("pipeline_root"), self.config, self.local_root
        )

    def session_info(self, uri: str) -> SessionInfo:
        return session_info(self.config, uri)

    def recorded_session_info(self, uri: str) -> dict[str, Any] | None:
        """What an artifact at ``uri`` records as store_session_info (None: a local file, or
        no usable provider settings)."""
        if not is_remote(uri):
            return None
        try:
            return self.session_info(uri).model_dump()
        except StorageConfigError:
            return None

    def session(self, uri: str) -> StoreSession:
        """Provider settings and credentials for one remote URI (secret values inside)."""
        try:
            return store_session(self.session_info(uri), self._secrets, self._env)
        except StorageConfigError as exc:
            raise FailedPrecondition(f"object storage for {uri}: {exc}") from exc

    # -- launchers

    def grant(
        self, session: Session, run_id: str, task_id: str, uris: list[str]
    ) -> StorageSessions:
        """Sessions for a running task's remote URIs; any URI it does not own is refused."""
        task = tasks_svc.load_task_in_run(session.connection(), run_id, task_id)
        if TaskState(task["state"]).is_terminal:
            raise TaskIsFinal(f"task {task_id} already ended: its storage access is over")
        run = session.execute(
            select(Run.pipeline_name, Run.runtime_config).where(Run.id == run_id)
        ).one()
        own = output_prefix(
            self.run_root(run.runtime_config), run.pipeline_name, run_id, task["name"], task_id
        )
        grouped: dict[str, StorageSession] = {}
        for uri in dict.fromkeys(uris):
            if not is_remote(uri):
                raise InvalidArgument(f"{uri!r} is not an object-store URI (s3, minio, gs)")
            if any(part in (".", "..") for part in uri.split("/")[3:]):
                raise InvalidArgument(f"{uri!r} has . or .. segments")
            if not uri.startswith(own + "/") and not _is_input(session, task_id, uri):
                raise FailedPrecondition(
                    f"{uri} is neither an output nor an input artifact of task {task_id}"
                )
            granted = self.session(uri)
            key = granted.info.model_dump_json() if granted.info else granted.protocol
            entry = grouped.get(key)
            if entry is None:
                info = granted.info.model_dump() if granted.info else {}
                entry = StorageSession(
                    protocol=granted.protocol, options=granted.options, store_session_info=info
                )
                grouped[key] = entry
            entry.uris.append(uri)
        return StorageSessions(sessions=list(grouped.values()))

    # -- reading artifacts

    def locate(self, uri: str, recorded: Mapping[str, Any] | None = None) -> tuple[Any, str]:
        """The fsspec filesystem and path holding a remote URI's bytes, opened with the
        settings the artifact recorded when written (else those configured now)."""
        info = _recorded(recorded) or self.session_info_or_error(uri)
        key = info.model_dump_json()
        fs = self._filesystems.get(key)
        if fs is None:
            try:
                fs = store_session(info, self._secrets, self._env).filesystem()
            except StorageConfigError as exc:
                raise FailedPrecondition(f"object storage for {uri}: {exc}") from exc
            self._filesystems[key] = fs
        return fs, fs_path(uri)

    def session_info_or_error(self, uri: str) -> SessionInfo:
        try:
            return self.session_info(uri)
        except StorageConfigError as exc:
            raise FailedPrecondition(f"object storage for {uri}: {exc}") from exc


@dataclass
class RunObjects:
    """What deleting a run's artifact objects would remove, and what it keeps and why."""

    delete: list[str] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)  # {uri, reason}
    errors: list[dict[str, str]] = field(default_factory=list)  # {uri, error}, after deleting


def run_objects(storage: Storage, session: Session, run_id: str) -> RunObjects:
    """The objects of the artifacts a finished run produced under its own output prefix.

    Artifacts elsewhere (imported, or reused from another run's cache) and artifacts another
    run also links to are kept: deleting them would break that run."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id!r} not found")
    if not RunState(run.state).is_terminal:
        raise FailedPrecondition("the run has not ended: terminate it before deleting its objects")
    root = storage.run_root(run.runtime_config).rstrip("/")
    prefix = f"{root}/{run.pipeline_name or 'pipeline'}/{run.id}/"
    produced = select(ArtifactTask.artifact_id).where(
        ArtifactTask.run_id == run_id, ArtifactTask.type.in_(PRODUCER_LINK_TYPES)
    )
    shared = select(ArtifactTask.artifact_id).where(ArtifactTask.run_id != run_id)
    rows = session.execute(
        select(Artifact.uri, Artifact.id.in_(shared))
        .where(Artifact.id.in_(produced), Artifact.uri.is_not(None))
        .order_by(Artifact.uri)
    ).all()
    plan = RunObjects()
    for found, is_shared in rows:
        uri = found or ""
        if not uri.startswith(prefix):
            plan.kept.append({"uri": uri, "reason": "not under this run's output prefix"})
        elif is_shared:
            plan.kept.append({"uri": uri, "reason": "another run uses this artifact"})
        else:
            plan.delete.append(uri)
    return plan


def delete_objects(storage: Storage, plan: RunObjects, local_root: Path) -> RunObjects:
    """Delete the planned objects (local files only under the artifact root); errors are
    reported per URI, never raised: the run itself is already gone."""
    for uri in plan.delete:
        try:
            fs, path = _deletable(storage, uri, local_root)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        except Exception as exc:  # denied, unreachable: report and go on
            plan.errors.append({"uri": uri, "error": f"{type(exc).__name__}: {exc}"})
    return plan


def _deletable(storage: Storage, uri: str, local_root: Path) -> tuple[Any, str]:
    if is_remote(uri):
        return storage.locate(uri)
    from fsspec.implementations.local import LocalFileSystem

    parsed = urlsplit(uri)
    path = Path(unquote(parsed.path)).resolve()
    if parsed.scheme != "file" or not path.is_relative_to(local_root.resolve()):
        raise FailedPrecondition("only files under the server's artifact root are deleted")
    return LocalFileSystem(), str(path)


def _recorded(recorded: Mapping[str, Any] | None) -> SessionInfo | None:
    if not recorded:
        return None
    try:
        return SessionInfo.model_validate(recorded)
    except ValueError:
        return None  # an unreadable record: the current configuration decides


def _is_input(session: Session, task_id: str, uri: str) -> bool:
    found = session.scalar(
        select(Artifact.id)
        .join(ArtifactTask, ArtifactTask.artifact_id == Artifact.id)
        .where(
            ArtifactTask.task_id == task_id,
            Artifact.uri_hash == uri_hash(uri),
            Artifact.uri == uri,
        )
        .limit(1)
    )
    return found is not None
