"""Replay a KFP v2 run's per-task ML Metadata traffic against MLMD 1.17.1.

Runs inside the side venv made by ``bench/mlmd_env.py`` (ml-metadata needs
protobuf<5)::

    python bench/mlmd_workload.py --tasks 1000 --db /tmp/mlmd.sqlite [--json] [--per-pod]
    python bench/mlmd_workload.py --tasks 1000 --mysql-database mlmd_bench_1 \
        [--mysql-host 127.0.0.1 --mysql-port 3306 --mysql-user root --mysql-password '']

Before kfpd, KFP v2 kept all run/task metadata in MLMD, written by the driver
and launcher pods through the Go client ``backend/src/v2/metadata/client.go``
(kubeflow/pipelines, pre-MLMD-removal). This script issues the same MLMD API
calls, in the same order and with the same shapes, for a run of N container
tasks (a chain: task i consumes task i-1's first output), so that the cost of
recording a run in MLMD can be compared with recording it in kfpd.

Once per run (timed, negligible): ``GetPipeline`` (get-or-insert the
``system.Pipeline`` and ``system.PipelineRun`` contexts, link them), the root
``system.DAGExecution`` and one seed input artifact.

Per task (timed), 13 MLMD calls:

* driver ``CreateExecution``: PutExecutionType(system.ContainerExecution);
  PutExecution(state RUNNING, custom props task_name/display_name/
  parent_dag_id/pod_*/image/cache_fingerprint/inputs, both contexts,
  one INPUT event for the upstream artifact); GetExecutionsByID.
* launcher ``GetExecution``: GetExecutionsByID; GetContextsByExecution.
* launcher ``PrePublishExecution``: PutExecution(pod name/uid/namespace).
* launcher ``RecordArtifact`` x2: PutArtifactType(system.Dataset);
  PutArtifacts(uri + custom props); GetArtifactsByID.
* launcher ``PublishExecution``: PutExecution(state COMPLETE, ``outputs``
  struct, two OUTPUT events, both contexts).

``--per-pod`` adds what each freshly started driver/launcher pod also did: the
driver's GetPipeline, GetDAG and upstream-output resolution (GetExecutionsByContext
filtered on parent_dag_id, paged 20 at a time as the Go client did, which grows
with the run; then GetEventsByExecutionIDs + GetArtifactsByID), and the
launcher's two GetContextType lookups (its type-id cache starts empty).

Not timed: opening the store and registering the types. The store is MLMD's
in-process C++ library on a fresh SQLite file, or with ``--mysql-database`` on
a MySQL/MariaDB database through ml-metadata's own MySQL connection config (the
database must exist and be empty; MLMD creates its schema). KFP went through
the gRPC metadata server to MySQL, so these numbers flatter MLMD.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any

from google.protobuf import struct_pb2
from ml_metadata import __version__ as mlmd_version
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from ml_metadata.proto import metadata_store_service_pb2 as svc

PIPELINE_CTX, RUN_CTX = "system.Pipeline", "system.PipelineRun"
CONTAINER_EXEC, DAG_EXEC, DATASET = (
    "system.ContainerExecution",
    "system.DAGExecution",
    "system.Dataset",
)
PIPELINE, RUN_ID, NAMESPACE = "bench-pipeline", "3f1c2b7e-0000-4000-8000-00000000b001", "kubeflow"
ROOT = f"minio://mlpipeline/v2/artifacts/{PIPELINE}/{RUN_ID}"
SESSION = '{"Provider":"minio","Params":{"region":"minio","disableSSL":"true","fromEnv":"false"}}'
OUTPUTS = ("dataset_a", "dataset_b")


class CountingStore(metadata_store.MetadataStore):
    """MetadataStore that counts every MLMD API call it makes."""

    def __init__(self, config: pb.ConnectionConfig) -> None:
        super().__init__(config)
        self.calls: Counter[str] = Counter()

    def _call(
        self, method_name: str, request: Any, response: Any, extra_options: Any = None
    ) -> Any:
        self.calls[method_name] += 1
        return super()._call(method_name, request, response, extra_options)


def sval(s: str) -> pb.Value:
    return pb.Value(string_value=s)


def ival(i: int) -> pb.Value:
    return pb.Value(int_value=i)


def struct(d: dict[str, Any]) -> pb.Value:
    s = struct_pb2.Struct()
    s.update(d)
    return pb.Value(struct_value=s)


def event(kind: int, name: str, artifact_id: int) -> pb.Event:
    path = pb.Event.Path(steps=[pb.Event.Path.Step(key=name)])
    return pb.Event(type=kind, path=path, artifact_id=artifact_id)


class Replay:
    """The Go metadata.Client calls made by KFP v2's driver and launcher."""

    def __init__(self, store: CountingStore, per_pod: bool) -> None:
        self.store, self.per_pod = store, per_pod
        self.ctx_type_ids: dict[str, int] = {}
        self.pipeline_ctx = self.run_ctx = pb.Context()
        self.dag_id = 0

    def register_types(self) -> None:
        s = self.store
        for name in (PIPELINE_CTX, RUN_CTX):
            self.ctx_type_ids[name] = s.put_context_type(pb.ContextType(name=name))
        for name in (CONTAINER_EXEC, DAG_EXEC):
            s.put_execution_type(pb.ExecutionType(name=name))
        s.put_artifact_type(pb.ArtifactType(name=DATASET))

    # --- client.go helpers -------------------------------------------------
    def _get_or_insert_context(
        self, name: str, type_name: str, props: dict[str, pb.Value]
    ) -> pb.Context:
        found = self.store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found
        type_id = self.store.get_context_type(type_name).id  # getContextTypeID
        self.store.put_contexts([pb.Context(name=name, type_id=type_id, custom_properties=props)])
        created = self.store.get_context_by_type_and_name(type_name, name)
        assert created is not None
        return created

    def get_pipeline(self) -> None:
        run_props = {
            "namespace": sval(NAMESPACE),
            "resource_name": sval(f"run-resource-{RUN_ID[:8]}"),
            "pipeline_root": sval(ROOT),
            "store_session_info": sval(SESSION),
        }
        self.pipeline_ctx = self._get_or_insert_context(PIPELINE, PIPELINE_CTX, {})
        self.run_ctx = self._get_or_insert_context(RUN_ID, RUN_CTX, run_props)
        parents = self.store.get_parent_contexts_by_context(self.run_ctx.id)
        if not parents:
            link = pb.ParentContext(child_id=self.run_ctx.id, parent_id=self.pipeline_ctx.id)
            self.store.put_parent_contexts([link])

    def get_pipeline_from_execution(self, execution_id: int) -> None:
        if self.per_pod:  # fresh process: ctxTypeCache is empty
            for name in (PIPELINE_CTX, RUN_CTX):
                self.store.get_context_type(name)
        by_type = {c.type_id: c for c in self.store.get_contexts_by_execution(execution_id)}
        self.pipeline_ctx = by_type[self.ctx_type_ids[PIPELINE_CTX]]
        self.run_ctx = by_type[self.ctx_type_ids[RUN_CTX]]

    def get_execution(self, execution_id: int) -> pb.Execution:
        (execution,) = self.store.get_executions_by_id([execution_id])
        self.get_pipeline_from_execution(execution_id)
        return execution

    def create_execution(
        self, type_name: str, props: dict[str, pb.Value], inputs: dict[str, int]
    ) -> pb.Execution:
        type_id = self.store.put_execution_type(pb.ExecutionType(name=type_name))
        execution = pb.Execution(
            type_id=type_id, last_known_state=pb.Execution.RUNNING, custom_properties=props
        )
        pairs = [(None, event(pb.Event.INPUT, name, aid)) for name, aid in inputs.items()]
        exec_id, _, _ = self.store.put_execution(
            execution, pairs, [self.pipeline_ctx, self.run_ctx]
        )
        (created,) = self.store.get_executions_by_id([exec_id])
        return created

    def record_artifact(self, task: str, name: str, rows: int) -> pb.Artifact:
        type_id = self.store.put_artifact_type(pb.ArtifactType(name=DATASET))
        props = {
            "display_name": sval(name),
            "store_session_info": sval(SESSION),
            "rows": ival(rows),
        }
        artifact = pb.Artifact(
            type_id=type_id,
            uri=f"{ROOT}/{task}/{name}",
            state=pb.Artifact.LIVE,
            custom_properties=props,
        )
        (artifact_id,) = self.store.put_artifacts([artifact])
        (stored,) = self.store.get_artifacts_by_id([artifact_id])
        return stored

    def publish_execution(
        self, execution: pb.Execution, outputs: dict[str, Any], artifacts: list[pb.Artifact]
    ) -> None:
        execution.last_known_state = pb.Execution.COMPLETE
        execution.custom_properties["outputs"].CopyFrom(struct(outputs))
        pairs = [
            (None, event(pb.Event.OUTPUT, a.custom_properties["display_name"].string_value, a.id))
            for a in artifacts
        ]
        self.store.put_execution(execution, pairs, [self.pipeline_ctx, self.run_ctx])

    def executions_in_dag(self) -> list[pb.Execution]:
        """GetExecutionsInDAG: raw GetExecutionsByContext paging, as in client.go."""
        options = pb.ListOperationOptions(
            filter_query=f"custom_properties.parent_dag_id.int_value = {self.dag_id}"
        )
        request = svc.GetExecutionsByContextRequest(context_id=self.run_ctx.id, options=options)
        found: list[pb.Execution] = []
        while True:
            response = svc.GetExecutionsByContextResponse()
            self.store._call("GetExecutionsByContext", request, response)
            found.extend(response.executions)
            if not response.next_page_token:
                return found
            request.options.next_page_token = response.next_page_token

    def output_artifacts_of(self, execution_id: int) -> list[pb.Artifact]:
        events = self.store.get_events_by_execution_ids([execution_id])
        return self.store.get_artifacts_by_id(
            [e.artifact_id for e in events if e.type == pb.Event.OUTPUT]
        )

    # --- the run -------------------------------------------------------------
    def start_run(self) -> int:
        """Root-DAG driver: contexts, root DAG execution, seed artifact; returns the seed id."""
        self.get_pipeline()
        dag = self.create_execution(DAG_EXEC, {"display_name": sval(""), "task_name": sval("")}, {})
        self.dag_id = dag.id
        seed = self.record_artifact("root", "seed", 0)
        self.store.put_execution(dag, [(None, event(pb.Event.OUTPUT, "seed", seed.id))], None)
        return seed.id

    def task(self, i: int, producer_id: int, input_id: int) -> tuple[int, int]:
        name = f"task-{i}"
        # ---- driver pod
        if self.per_pod:
            self.get_pipeline()
            self.get_execution(self.dag_id)  # GetDAG
            self.executions_in_dag()  # resolveInputs: find the producer task...
            input_id = self.output_artifacts_of(producer_id)[0].id  # ...and its output artifact
        props = {
            "display_name": sval(name),
            "task_name": sval(name),
            "parent_dag_id": ival(self.dag_id),
            "pod_name": sval(""),
            "pod_uid": sval(""),
            "namespace": sval(""),
            "image": sval("python:3.11"),
            "cache_fingerprint": sval(f"{i:064x}"),
            "inputs": struct({"n": i, "message": f"hello from {name}", "lr": 0.01}),
        }
        execution = self.create_execution(CONTAINER_EXEC, props, {"input_dataset": input_id})
        # ---- launcher pod
        execution = self.get_execution(execution.id)
        for key, value in (
            ("pod_name", f"{name}-pod"),
            ("pod_uid", f"uid-{i}"),
            ("namespace", NAMESPACE),
        ):
            execution.custom_properties[key].CopyFrom(sval(value))
        execution.last_known_state = pb.Execution.RUNNING
        self.store.put_execution(execution, [], None)  # PrePublishExecution
        artifacts = [self.record_artifact(name, out, rows=i) for out in OUTPUTS]
        self.publish_execution(execution, {"accuracy": 0.5 + i / 1e6, "msg": name}, artifacts)
        return execution.id, artifacts[0].id


def open_mysql_store(
    host: str, port: int, user: str, password: str, database: str
) -> CountingStore:
    config = pb.ConnectionConfig()
    config.mysql.host = host
    config.mysql.port = port
    config.mysql.user = user
    config.mysql.password = password
    config.mysql.database = database
    return CountingStore(config)


def open_store(path: str) -> CountingStore:
    for suffix in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    sqlite = pb.SqliteMetadataSourceConfig(
        filename_uri=path, connection_mode=pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return CountingStore(pb.ConnectionConfig(sqlite=sqlite))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--db", default=os.path.join(tempfile.gettempdir(), "kfpd-bench-mlmd.sqlite"))
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument(
        "--per-pod", action="store_true", help="add each pod's own lookups (see docstring)"
    )
    ap.add_argument(
        "--mysql-database",
        help="record into this (empty) MySQL/MariaDB database instead of a SQLite file",
    )
    ap.add_argument("--mysql-host", default="127.0.0.1")
    ap.add_argument("--mysql-port", type=int, default=3306)
    ap.add_argument("--mysql-user", default="root")
    ap.add_argument("--mysql-password", default="")
    args = ap.parse_args()

    if args.mysql_database:
        store = open_mysql_store(
            args.mysql_host,
            args.mysql_port,
            args.mysql_user,
            args.mysql_password,
            args.mysql_database,
        )
        where = f"mysql {args.mysql_host}:{args.mysql_port}/{args.mysql_database}"
        backend = "mysql"
    else:
        store = open_store(args.db)
        where, backend = f"sqlite {args.db}", "sqlite"
    replay = Replay(store, args.per_pod)
    replay.register_types()
    setup_calls = sum(store.calls.values())

    t0 = time.perf_counter()
    input_id = replay.start_run()
    producer_id = replay.dag_id
    for i in range(args.tasks):
        producer_id, input_id = replay.task(i, producer_id, input_id)
    seconds = time.perf_counter() - t0

    calls = sum(store.calls.values()) - setup_calls
    n_exec = len(store.get_executions_by_context(replay.run_ctx.id))
    n_art = len(store.get_artifacts_by_type(DATASET))
    assert (n_exec, n_art) == (args.tasks + 1, 2 * args.tasks + 1), (n_exec, n_art)
    assert mlmd_version == "1.17.1", mlmd_version

    rate = args.tasks / seconds
    mode = "per-pod" if args.per_pod else "default"
    human = (
        f"mlmd {mlmd_version} ({mode}, {where}): {args.tasks} tasks in {seconds:.3f}s "
        f"= {rate:.1f} tasks/s, {calls} MLMD calls ({calls / max(args.tasks, 1):.1f}/task)"
    )
    print(human, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        result: dict[str, Any] = {
            "system": "mlmd",
            "tasks": args.tasks,
            "seconds": round(seconds, 4),
            "tasks_per_s": round(rate, 2),
            "mlmd_version": mlmd_version,
            "backend": backend,
        }
        if args.per_pod:
            result["mode"] = mode
        print(json.dumps(result))


if __name__ == "__main__":
    main()
