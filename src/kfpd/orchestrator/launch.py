"""Build the launcher's LaunchSpec for a container task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    container: Mapping[str, Any],
    component: Mapping[str, Any],
    inputs: ResolvedInputs,
    workspace_path: str = "",
    kubernetes: dict[str, Any] | None = None,
    service_account: str = "",
) -> LaunchSpec:
    prefix = output_prefix(job.pipeline_root, pipeline_name, job.run_id, task_name, task_id)
    outputs = component.get("outputDefinitions") or {}
    output_artifacts = {
        key: OutputArtifactSpec(
            name=key,
            uri=f"{prefix}/{key}",
            schema_title=(d.get("artifactType") or {}).get("schemaTitle", "system.Artifact"),
            schema_version=(d.get("artifactType") or {}).get("schemaVersion", "0.0.1"),
        )
        for key, d in (outputs.get("artifacts") or {}).items()
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
            image=container.get("image", ""),
            command=list(container.get("command") or []),
            args=list(container.get("args") or []),
            env=[
                EnvVar(name=e.get("name", ""), value=str(e.get("value", "")))
                for e in container.get("env") or []
            ],
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
            key: d.get("parameterType", "STRING")
            for key, d in (outputs.get("parameters") or {}).items()
        },
        output_artifacts=output_artifacts,
        log_uri=f"{prefix}/executor-logs",
        resources=dict(container.get("resources") or {}),
        kubernetes=dict(kubernetes or {}),
        service_account=service_account,
    )
