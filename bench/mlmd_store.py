"""Side-venv half of bench/mlmd_import.py: write a large KFP-shaped MLMD store, or read it back.

Runs inside the venv of ``bench/mlmd_env.py`` (ml-metadata 1.17.1, protobuf<5)::

    python bench/mlmd_store.py generate --db store.sqlite --executions 10000
    python bench/mlmd_store.py read --db store.sqlite      # prints one JSON line

``generate`` replays KFP's driver/launcher calls with the fixture generator's client
(tests/fixtures/mlmd/generate.py): runs of a root DAG, an importer (its artifact reused by
every run), a preprocess container, a ParallelFor whose iterations each hold a DAG execution and
a train container (model, metrics and executor-logs outputs); 200 executions per run.

``read`` times what reading the whole history back through MLMD's own API takes: every
``system.PipelineRun`` context, its executions, their events and artifacts, and the contexts'
parents (in-process C++ store over SQLite, no gRPC server, which flatters MLMD).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mlmd"))
import generate  # the fixture generator's KFP client replay

PER_RUN = 200  # executions: root, importer, preprocess, loop + 98 x (iteration DAG, train)


def write_run(store: metadata_store.MetadataStore, index: int, reuse: int) -> int:
    run_id = f"b0000000-0000-4000-8000-{index:012d}"
    kfp = generate.Kfp(store, "bench-pipeline", run_id, "kubeflow")
    root = kfp.dag("", 0, display="", name=f"run/{run_id}", inputs={"n": index})
    data = kfp.importer(root.id, reuse=reuse)
    _, made = kfp.container(
        "preprocess",
        root.id,
        inputs={"n": index},
        input_artifacts={"dataset": data},
        outputs={"rows": 100},
        out={"train_data": ("system.Dataset", {})},
        fingerprint=f"fp-pre-{index}",
    )
    iterations = (PER_RUN - 4) // 2
    loop = kfp.dag("for-loop-2", root.id, iteration_count=iterations)
    for i in range(iterations):
        it = kfp.dag("for-loop-2", loop.id, iteration_index=i)
        kfp.container(
            "train",
            it.id,
            iteration=i,
            inputs={"lr": i / 1000},
            input_artifacts={"data": made["train_data"]},
            out={
                "model": ("system.Model", {}),
                "metrics": ("system.Metrics", {"accuracy": generate._d(i / iterations)}),
            },
            fingerprint=f"fp-train-{index}-{i}",
        )
        kfp.set_state(it.id, pb.Execution.COMPLETE)
    kfp.set_state(loop.id, pb.Execution.COMPLETE)
    return data


def cmd_generate(path: Path, executions: int) -> None:
    store = generate._sqlite_store(path)
    started = time.perf_counter()
    reuse = 0
    for index in range(max(1, executions // PER_RUN)):
        reuse = write_run(store, index, reuse)
    print(f"generated {path} in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def cmd_read(path: Path) -> None:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    started = time.perf_counter()
    counts = {"runs": 0, "executions": 0, "events": 0, "artifacts": 0}
    for context in store.get_contexts_by_type("system.PipelineRun"):
        store.get_parent_contexts_by_context(context.id)
        executions = store.get_executions_by_context(context.id)
        events = store.get_events_by_execution_ids([e.id for e in executions])
        artifacts = store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))
        counts["runs"] += 1
        counts["executions"] += len(executions)
        counts["events"] += len(events)
        counts["artifacts"] += len(artifacts)
    seconds = time.perf_counter() - started
    print(json.dumps({"system": "mlmd", "seconds": round(seconds, 3), **counts}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["generate", "read"])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--executions", type=int, default=10_000)
    args = ap.parse_args()
    if args.command == "generate":
        cmd_generate(args.db, args.executions)
    else:
        cmd_read(args.db)


if __name__ == "__main__":
    main()
