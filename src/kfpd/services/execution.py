"""What a launcher reports: the final outcome of one container task, and its log meanwhile.

``finish_task`` writes everything a finished task produced in the caller's one transaction:
output artifacts with their OUTPUT links, the executor-logs artifact, output parameters, and
the final state (which rolls up to parents and the run inside ``services.tasks``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from kfpd.db.models import Task
from kfpd.domain.enums import ArtifactType, IOType, TaskPodType, TaskState
from kfpd.domain.errors import TaskIsFinal
from kfpd.domain.schema_titles import SCHEMA_TITLE_KEY, artifact_type_for, is_known_title
from kfpd.schemas.artifacts import Artifact, CreateArtifactRequest, IOProducer
from kfpd.schemas.launch import FinishTaskRequest, OutputArtifact, TaskLog
from kfpd.schemas.tasks import InputOutputs, IOParameter, PipelineTask, StatusMetadata, TaskPod
from kfpd.services import artifacts as artifacts_svc
from kfpd.services import tasks as tasks_svc
from kfpd.services.logstore import LogStore

EXECUTOR_LOGS_KEY = "executor-logs"


def _check_open(task: dict[str, Any]) -> None:
    state = TaskState(task["state"])
    if state.is_terminal:
        raise TaskIsFinal(f"task {task['id']} already ended ({state.name})")


def _open_task(conn: Connection, run_id: str, task_id: str) -> dict[str, Any]:
    task = tasks_svc.load_task_in_run(conn, run_id, task_id)
    _check_open(task)
    return task


def _artifact_request(task: dict[str, Any], out: OutputArtifact) -> CreateArtifactRequest:
    atype = artifact_type_for(out.schema_title)
    metadata = dict(out.metadata)
    if not is_known_title(out.schema_title):
        metadata[SCHEMA_TITLE_KEY] = out.schema_title
    return CreateArtifactRequest(
        artifact=Artifact(
            name=out.name or out.key,
            type=atype,
            uri=out.uri or None,
            metadata=metadata,
            number_value=out.number_value,
        ),
        run_id=task["run_id"],
        task_id=task["id"],
        producer_key=out.key,
        iteration_index=task["iteration_index"],
        type=IOType.OUTPUT,
    )


def _logs_request(task: dict[str, Any], log_uri: str) -> CreateArtifactRequest:
    return CreateArtifactRequest(
        artifact=Artifact(name=EXECUTOR_LOGS_KEY, type=ArtifactType.Artifact, uri=log_uri),
        run_id=task["run_id"],
        task_id=task["id"],
        producer_key=EXECUTOR_LOGS_KEY,
        iteration_index=task["iteration_index"],
        type=IOType.OUTPUT,
    )


def finish_task(
    session: Session,
    store: LogStore,
    run_id: str,
    task_id: str,
    body: FinishTaskRequest,
    session_info_of: artifacts_svc.SessionInfoOf | None = None,
) -> tuple[Task, artifacts_svc.Hydration]:
    """Record a task's outputs and final state; a task finishes once (409 after). Returns the
    task with its links (the reply).

    One run lock and one read of the task row for the whole report: this is the call every
    container task makes, so it stays on prebuilt Core statements."""
    conn = session.connection()
    # The run's lock first, so the state check below cannot race.
    found = tasks_svc.lock_run_and_load_finishing(conn, run_id, task_id)
    run, task = found.run, found.task
    _check_open(task)
    store.append(run_id, task_id, body.log_text)
    requests = [_artifact_request(task, out) for out in body.output_artifacts]
    if body.log_uri:
        requests.append(_logs_request(task, body.log_uri))
    links = list(found.links)
    if requests:
        # Every output is a new artifact: its store_session_info goes in with its row.
        links += artifacts_svc.create_task_outputs(session, task, requests, session_info_of)
    producer = IOProducer(task_name=task["name"], iteration=task["iteration_index"])
    parameters = [
        IOParameter(parameter_key=key, value=value, type=IOType.OUTPUT, producer=producer)
        for key, value in body.output_parameters.items()
    ]
    message = body.error_message if body.state == "FAILED" else None
    placement = dict(body.placement) or None
    update = PipelineTask(
        state=TaskState[body.state],
        outputs=InputOutputs(parameters=parameters) if parameters else None,
        status_metadata=(
            StatusMetadata(
                message=message, custom_properties={"placement": placement} if placement else None
            )
            if message or placement
            else None
        ),
        pods=_placed_pods(task, placement) if placement else None,
    )
    updated = tasks_svc.update_locked(session, run, task, update, found.parent)
    if body.log_uri and _single_attempt_ended(updated):
        store.adopt(run_id, task_id, body.log_uri)
    if updated.state != TaskState.SUCCEEDED or updated.type in artifacts_svc.GROUP_TYPE_NUMBERS:
        # A failed attempt's outputs were dropped again; a group has children to list too.
        return updated, artifacts_svc.hydrate(session, [updated])
    # Its links as stored before and as written now: the reply needs no read of its own.
    return updated, artifacts_svc.hydration_of(updated.id, links)


def _single_attempt_ended(task: Task) -> bool:
    """A final task that ran once: its launcher's log file holds its whole log. (A retried
    task keeps the streamed copy: each attempt's launcher rewrites the file.)"""
    if not TaskState(task.state).is_terminal:
        return False
    failed = [h for h in task.state_history or [] if h.get("state") in ("FAILED", 4)]
    return len(failed) <= (1 if task.state == TaskState.FAILED else 0)


def _placed_pods(task: dict[str, Any], placement: dict[str, str]) -> list[TaskPod]:
    """The task's executor pod named as where it really ran (a pod's name and uid, a Ray task)."""
    pods = [TaskPod.model_validate(p) for p in task.get("pods") or []]
    name = placement.get("pod_name")
    uid = placement.get("pod_uid") or placement.get("ray_task_id")
    executor = next((p for p in pods if p.type == TaskPodType.EXECUTOR), None)
    if executor is None:
        executor = TaskPod(type=TaskPodType.EXECUTOR)
        pods.append(executor)
    executor.name = name or executor.name
    executor.uid = uid or executor.uid
    return pods


def append_log(session: Session, store: LogStore, run_id: str, task_id: str, text: str) -> None:
    """Append to a running task's log (the task must exist and not have ended)."""
    _open_task(session.connection(), run_id, task_id)
    store.append(run_id, task_id, text)


def read_log(
    session: Session,
    store: LogStore,
    run_id: str,
    task_id: str,
    offset: int,
    limit_bytes: int | None,
) -> TaskLog:
    task = tasks_svc.get_task(session, run_id, task_id)
    # State first: text written before the task ended is on disk by the time we read it.
    complete = TaskState(task.state).is_terminal
    text, next_offset = store.read(run_id, task_id, offset, limit_bytes)
    size = store.path(run_id, task_id).stat().st_size if complete and text else None
    return TaskLog(
        text=text,
        next_offset=next_offset,
        complete=complete and (size is None or next_offset >= size),
    )
