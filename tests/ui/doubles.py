"""Test doubles for two endpoints other branches build: task logs and lineage.

Each is installed only when the app has no route of that path, so once the real endpoint is
merged the UI tests exercise it instead. Both follow their contracts (docs/api.md and
/work/wt/briefs/lineage-contract.md): logs by byte offset with ``complete`` once the task
ended; lineage one hop per edge through RUNTIME/IMPORTER tasks, without paging.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from kfpd.db.engine import Database
from kfpd.db.models import Artifact, ArtifactTask, Task
from kfpd.domain.enums import OUTPUT_IO_TYPES, ArtifactType, IOType, TaskState, TaskType
from kfpd.domain.errors import InvalidArgument, NotFound

LOG_PATH = "/apis/v2beta1/runs/{run_id}/tasks/{task_id}/logs"
ARTIFACT_LINEAGE_PATH = "/apis/v2beta1/artifacts/{artifact_id}/lineage"
TASK_LINEAGE_PATH = "/apis/v2beta1/tasks/{task_id}/lineage"


def has_route(app: FastAPI, path: str, method: str = "GET") -> bool:
    # Included routers may be kept lazily (not as APIRoute entries): ask the OpenAPI schema.
    operations = app.openapi().get("paths", {}).get(path, {})
    return method.lower() in operations


Edge = tuple[str, str, str, str]  # source, target, io_type, key


def _walk(
    edges: list[Edge], root_id: str, direction: str, max_hops: int
) -> tuple[dict[str, tuple[int, str]], list[Edge]]:
    """Breadth-first over the edges from the root: each node's (hop, way), the edges kept."""
    hops: dict[str, tuple[int, str]] = {root_id: (0, "")}
    kept: list[Edge] = []
    for way in ("UPSTREAM", "DOWNSTREAM"):
        if direction not in (way, "BOTH"):
            continue
        frontier = [root_id]
        for hop in range(1, max_hops + 1):
            nxt = []
            for src, dst, io_type, key in edges:
                here, there = (dst, src) if way == "UPSTREAM" else (src, dst)
                if here in frontier:
                    kept.append((src, dst, io_type, key))
                    if there not in hops:
                        hops[there] = (hop, way)
                        nxt.append(there)
            frontier = nxt
    return hops, kept


class Doubles:
    def __init__(self, app: FastAPI, db: Database) -> None:
        self.db = db
        self.logs: dict[str, bytes] = {}
        self.log_double = not has_route(app, LOG_PATH)
        self.lineage_double = not has_route(app, ARTIFACT_LINEAGE_PATH)
        if self.log_double:
            app.add_api_route(LOG_PATH, self.read_log, methods=["GET"])
        if self.lineage_double:
            app.add_api_route(ARTIFACT_LINEAGE_PATH, self.artifact_lineage, methods=["GET"])
            app.add_api_route(TASK_LINEAGE_PATH, self.task_lineage, methods=["GET"])

    # ------------------------------------------------------------------ logs

    def read_log(
        self, run_id: str, task_id: str, offset: int = 0, limit_bytes: int = 65536
    ) -> dict[str, Any]:
        with self.db.read_session() as s:
            task = s.get(Task, task_id)
            if task is None or task.run_id != run_id:
                raise NotFound(f"task {task_id!r} not found in run {run_id!r}")
            ended = TaskState(task.state).is_terminal
        data = self.logs.get(task_id, b"")
        chunk = data[offset : offset + max(1, limit_bytes)]
        next_offset = offset + len(chunk)
        return {
            "text": chunk.decode("utf-8", errors="replace"),
            "next_offset": next_offset,
            "complete": ended and next_offset >= len(data),
        }

    # ------------------------------------------------------------------ lineage

    def artifact_lineage(
        self, artifact_id: str, direction: str = "BOTH", max_hops: int = 3
    ) -> dict[str, Any]:
        return self._lineage("ARTIFACT", artifact_id, direction, max_hops)

    def task_lineage(
        self, task_id: str, direction: str = "BOTH", max_hops: int = 3
    ) -> dict[str, Any]:
        return self._lineage("TASK", task_id, direction, max_hops)

    def _lineage(self, kind: str, root_id: str, direction: str, max_hops: int) -> dict[str, Any]:
        if direction not in {"UPSTREAM", "DOWNSTREAM", "BOTH"} or not 1 <= max_hops <= 100:
            raise InvalidArgument("bad direction or max_hops")
        output_types = [int(t) for t in OUTPUT_IO_TYPES if t != IOType.TASK_FINAL_STATUS_OUTPUT]
        producer_types = [int(TaskType.RUNTIME), int(TaskType.IMPORTER)]
        with self.db.read_session() as s:
            model = Artifact if kind == "ARTIFACT" else Task
            if s.get(model, root_id) is None:
                raise NotFound(f"{kind.lower()} {root_id!r} not found")
            rows = s.execute(
                select(
                    ArtifactTask.artifact_id,
                    ArtifactTask.task_id,
                    ArtifactTask.type,
                    ArtifactTask.key,
                )
                .join(Task, Task.id == ArtifactTask.task_id)
                .where(Task.type.in_(producer_types))
            ).all()
            # (source, target, io_type, key): task -> artifact for outputs, artifact -> task for inputs.
            edges = []
            for artifact_id, task_id, io_type, key in rows:
                if io_type in output_types:
                    edges.append((task_id, artifact_id, IOType(io_type).name, key))
                else:
                    edges.append((artifact_id, task_id, IOType(io_type).name, key))
            hops, kept = _walk(edges, root_id, direction, max_hops)
            nodes = []
            for node_id, (hop, way) in hops.items():
                if node_id == root_id:
                    continue
                task = s.get(Task, node_id)
                if task is not None:
                    nodes.append(
                        {
                            "kind": "TASK",
                            "id": task.id,
                            "hop": hop,
                            "direction": way,
                            "name": task.name,
                            "display_name": task.display_name or task.name,
                            "type": TaskType(task.type).name,
                            "state": TaskState(task.state).name,
                            "run_id": task.run_id,
                        }
                    )
                    continue
                art = s.get(Artifact, node_id)
                if art is not None:
                    nodes.append(
                        {
                            "kind": "ARTIFACT",
                            "id": art.id,
                            "hop": hop,
                            "direction": way,
                            "name": art.name,
                            "type": ArtifactType(art.type).name,
                            "uri": art.uri or "",
                        }
                    )
        nodes.sort(key=lambda n: (n["hop"], n["kind"], n["id"]))
        unique = {(a, b): (a, b, t, k) for a, b, t, k in kept if a in hops and b in hops}
        return {
            "root": {"kind": kind, "id": root_id},
            "nodes": nodes,
            "edges": [
                {"source_id": a, "target_id": b, "io_type": t, "key": k}
                for a, b, t, k in unique.values()
            ],
            "total_size": len(nodes),
        }
