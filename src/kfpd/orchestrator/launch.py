"""Build the launcher's LaunchSpec for a container task."""

from __future__ import annotations

from typing import Any

from kfpd.ir import Container, Definitions
from kfpd.orchestrator.resolve import JobInfo, ResolvedInputs
from kfpd.schemas.launch import (
    ContainerSpec,
    EnvVar,
    LaunchSpec,
    OutputArtifactSpec,
    RuntimeArtifactSpec,
)


def output_prefix(
    pipeline_root: str, pipeline_name: str, run_id: str, task_name: str, task_id: str
) -> str:
    """Where a task's outputs go: ``<root>/<pipeline>/<run>/<task>/<task id>``."""
    return "/".join(
        [pipeline_root.rstrip("/"), pipeline_name or "pipeline", run_id, task_name, task_id]
    )


def _or(value: str | None, default: str) -> str:
    """An IR field's value, or the default when the IR leaves it out (not when empty)."""
    return default if value is None else value


def build_launch_spec(
    *,
    server_url: str,
    token: str,
    job: JobInfo,
    namespace: str,
    pipeline_name: str,
    task_id: str,
    task_name: str,
    display_name: str,
    parent_task_id: str | None,
    iteration_index: int | None,
    container: Container,
    outputs: Definitions,
    inputs: ResolvedInputs,
    workspace_path: str = "",
    kubernetes: dict[str, Any] | None = None,
    service_account: str = "",
) -> LaunchSpec:
    prefix = output_prefix(job.pipeline_root, pipeline_name, job.run_id, task_name, task_id)
    output_artifacts = {
        key: OutputArtifactSpec(
            name=key,
            uri=f"{prefix}/{key}",
            schema_title=_or(d.artifact_type.schema_title, "system.Artifact"),
            schema_version=_or(d.artifact_type.schema_version, "0.0.1"),
        )
        for key, d in outputs.artifacts.items()
    }
    return LaunchSpec(
        server_url=server_url,
        token=token,
        run_id=job.run_id,
        task_id=task_id,
        task_name=task_name,
        display_name=display_name,
        namespace=namespace,
        pipeline_name=pipeline_name,
        run_display_name=job.run_name,
        run_create_time=job.create_time,
        run_schedule_time=job.schedule_time,
        run_resource_name=job.resource_name,
        workspace_path=workspace_path,
        pipeline_root=job.pipeline_root,
        iteration_index=iteration_index,
        parent_task_id=parent_task_id,
        container=ContainerSpec(
            image=container.image,
            command=list(container.command),
            args=list(container.args),
            env=[EnvVar(name=name, value=value) for name, value in container.env],
        ),
        parameter_values=inputs.values(),
        input_artifacts={
            key: [
                RuntimeArtifactSpec(
                    artifact_id=a.artifact_id,
                    name=a.name,
                    uri=a.uri,
                    schema_title=a.schema_title,
                    metadata=dict(a.metadata),
                )
                for a in io.artifacts
            ]
            for key, io in inputs.artifacts.items()
        },
        output_parameters={
            key: _or(d.parameter_type, "STRING") for key, d in outputs.parameters.items()
        },
        output_artifacts=output_artifacts,
        log_uri=f"{prefix}/executor-logs",
        resources=dict(container.resources),
        kubernetes=dict(kubernetes or {}),
        service_account=service_account,
    )
