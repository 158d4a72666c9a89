"""The contract between the orchestrator (in the server) and a launcher process (anywhere).

The orchestrator resolves a task's inputs, provisions its outputs and hands the launcher a
``LaunchSpec``; the launcher runs the executor and reports back with one ``FinishTaskRequest``
over HTTP (``POST /apis/v2beta1/runs/{run_id}/tasks/{task_id}:finish``), streaming its log with
``POST /apis/v2beta1/runs/{run_id}/tasks/{task_id}/logs`` meanwhile. Both calls carry the run
token (``Authorization: Bearer …``) from the spec; the launcher never touches the database.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kfpd.schemas.base import Name, WireModel


class RuntimeArtifactSpec(WireModel):
    """An input artifact, already resolved to a stored artifact."""

    artifact_id: str | None = None
    name: str = ""
    uri: str = ""
    schema_title: str = "system.Artifact"
    schema_version: str = "0.0.1"
    metadata: dict[str, Any] = {}


class OutputArtifactSpec(WireModel):
    """An output artifact slot; ``uri`` is provisioned by the orchestrator."""

    name: str
    uri: str
    schema_title: str = "system.Artifact"
    schema_version: str = "0.0.1"
    metadata: dict[str, Any] = {}


class EnvVar(WireModel):
    name: str
    value: str = ""


class ContainerSpec(WireModel):
    image: str = ""
    command: list[str] = []
    args: list[str] = []
    env: list[EnvVar] = []


class LaunchSpec(WireModel):
    server_url: str
    token: str
    run_id: str
    task_id: str
    task_name: str  # the task key in its DAG, e.g. "add-numbers"
    display_name: str = ""
    namespace: str = ""
    pipeline_name: str = ""
    run_display_name: str = ""
    run_create_time: str = ""  # RFC 3339
    run_resource_name: str = ""  # {{$.pipeline_job_resource_name}} (else the run id)
    run_schedule_time: str = ""  # RFC 3339; {{$.pipeline_job_schedule_time_utc}} (else create time)
    pipeline_root: str  # URI, e.g. file:///home/u/.kfpd/artifacts
    iteration_index: int | None = None
    parent_task_id: str | None = None
    # Importers run in the server; a launcher only ever runs a container.
    container: ContainerSpec
    # Resolved inputs: native JSON values (integers stay integers); absent key = not provided.
    parameter_values: dict[str, Any] = {}
    input_artifacts: dict[str, list[RuntimeArtifactSpec]] = {}
    # Outputs: parameter name -> KFP parameter type name (STRING, NUMBER_INTEGER, LIST, ...).
    output_parameters: dict[str, str] = {}
    output_artifacts: dict[str, OutputArtifactSpec] = {}
    # Where the task may write scratch files (executor output, OutputPath parameter files).
    # Empty: the executor or launcher picks one (the local executor: <work_root>/<run>/<task>).
    work_dir: str = ""
    # {{$.workspace_path}}; empty when the run has no workspace.
    workspace_path: str = ""
    # Where the executor-logs artifact lives once the task ends (provisioned like outputs).
    log_uri: str = ""
    # What a remote executor needs to place the task (the local executor ignores them):
    # the container's PipelineSpec ``resources`` (cpuLimit, memoryLimit, accelerator, ...),
    # its kfp-kubernetes executor config with every parameter source already resolved to a
    # value (``secretNameParameter`` -> the name), and the run's service account.
    resources: dict[str, Any] = {}
    kubernetes: dict[str, Any] = {}
    service_account: str = ""


class OutputArtifact(WireModel):
    """One produced artifact. Metrics outputs become one artifact per scalar (§5.8)."""

    key: Name  # the output key in the component's outputDefinitions
    name: Name = ""
    uri: Name | None = None
    schema_title: str = "system.Artifact"
    metadata: dict[str, Any] = {}
    number_value: float | None = None


class FinishTaskRequest(WireModel):
    """The launcher's single report: outputs and final state, written in one transaction."""

    state: Literal["SUCCEEDED", "FAILED"]
    error_message: str | None = None
    output_parameters: dict[str, Any] = {}
    output_artifacts: list[OutputArtifact] = []
    log_uri: str | None = None  # becomes the task's executor-logs artifact
    # The end of the log not yet sent with AppendLog (saves a call for short tasks); it is
    # appended before the task turns final, so a reader that sees it final has all the text.
    log_text: str = ""
    # Where the launcher ran, as its executor tells it (a Kubernetes pod's name and uid, a Ray
    # node and task id); recorded in the task's pods and status metadata.
    placement: dict[str, str] = {}


class StorageSessionsRequest(WireModel):
    """The remote artifact URIs a running task will read or write."""

    uris: list[str] = Field(default=[], max_length=10000)


class StorageSession(WireModel):
    """One object-store session: fsspec protocol and options (credentials included) serving
    ``uris``. Sent only to the task's launcher, in the reply body; never stored."""

    protocol: str
    options: dict[str, Any] = Field(default={}, repr=False)
    uris: list[str] = []
    # Upstream's store_session_info for these URIs: provider and settings, no secret values.
    store_session_info: dict[str, Any] = {}


class StorageSessions(WireModel):
    sessions: list[StorageSession] = []


class AppendLogRequest(WireModel):
    text: str = Field(default="", description="log text to append (UTF-8)")


class TaskLog(WireModel):
    """A slice of a task's log. Offsets count bytes of the UTF-8 log file."""

    text: str = ""
    next_offset: int = 0
    complete: bool = False  # the task has ended; no more text will come
