"""ML Metadata 1.17.1's get_lineage_subgraph on the graph bench/lineage.py seeds into kfpd.

Runs inside the side venv made by ``bench/mlmd_env.py`` (ml-metadata needs protobuf<5), so
it cannot import kfpd: bench/lineage.py writes the graph as JSON and starts this script::

    python bench/mlmd_lineage.py --graph graph.json --hops 20 --repeats 200 [--db mlmd.sqlite]

The graph maps onto MLMD as KFP v2 did before kfpd: one ``system.PipelineRun`` context per
run, one execution per task (``system.ContainerExecution`` for runtime and importer tasks,
``system.DAGExecution`` for group tasks), artifacts typed ``system.Dataset`` /
``system.Model`` / ``system.Metrics`` / ``system.Artifact``, and an OUTPUT or INPUT event per
kfpd link of a runtime or importer task (group tasks' propagated copies have no MLMD
counterpart). Each run is written with one ``put_lineage_subgraph`` call (not timed).

Timed: ``get_lineage_subgraph`` from each root artifact, ``direction=UPSTREAM``,
``max_num_hops=<hops>``, in-process on MLMD's C++ store over a SQLite file (no gRPC server,
which flatters MLMD). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Any

from ml_metadata import __version__ as mlmd_version
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

GROUP_TASK_TYPES = {1, 3, 4, 5, 6, 8, 9}  # ROOT, CONDITION(_BRANCH), LOOP, EXIT_HANDLER, DAG, ...
OUTPUT_LINK_TYPES = {8, 9, 10}
INPUT_LINK_TYPES = {1, 2, 3, 4, 5, 6, 7}
ARTIFACT_TYPES = {1: "system.Artifact", 2: "system.Model", 3: "system.Dataset", 6: "system.Metrics"}


def open_store(path: str) -> metadata_store.MetadataStore:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def seed(store: metadata_store.MetadataStore, graph: dict[str, Any]) -> dict[str, int]:
    """Write the graph run by run; return kfpd artifact id -> MLMD artifact id."""
    run_type = store.put_context_type(pb.ContextType(name="system.PipelineRun"))
    container = store.put_execution_type(pb.ExecutionType(name="system.ContainerExecution"))
    dag = store.put_execution_type(pb.ExecutionType(name="system.DAGExecution"))
    art_types = {
        k: store.put_artifact_type(pb.ArtifactType(name=name)) for k, name in ARTIFACT_TYPES.items()
    }
    task_type = {t: tt for t, tt, _ in graph["tasks"]}
    tasks_of: dict[str, list[str]] = defaultdict(list)
    for task, _, run in graph["tasks"]:
        tasks_of[run].append(task)
    arts_of: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for art, atype, run in graph["artifacts"]:
        arts_of[run].append((art, atype))
    links_of: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for art, task, io, run in graph["links"]:
        if task_type[task] not in GROUP_TASK_TYPES:
            links_of[run].append((art, task, io))
    artifact_ids: dict[str, int] = {}
    for run in graph["runs"]:
        tasks = tasks_of[run]
        task_index = {t: i for i, t in enumerate(tasks)}
        executions = [
            pb.Execution(
                type_id=dag if task_type[t] in GROUP_TASK_TYPES else container,
                name=f"{run}/{t}",
                last_known_state=pb.Execution.COMPLETE,
            )
            for t in tasks
        ]
        new = arts_of[run]
        art_index = {a: i for i, (a, _) in enumerate(new)}
        artifacts = [
            pb.Artifact(
                type_id=art_types.get(atype, art_types[1]),
                uri=f"s3://bench/{run}/{a}",
                state=pb.Artifact.LIVE,
            )
            for a, atype in new
        ]
        edges: list[tuple[int | None, int | None, pb.Event]] = []
        for art, task, io in links_of[run]:
            kind = pb.Event.OUTPUT if io in OUTPUT_LINK_TYPES else pb.Event.INPUT
            event = pb.Event(type=kind)
            if art in art_index:
                edges.append((task_index[task], art_index[art], event))
            else:
                event.artifact_id = artifact_ids[art]
                edges.append((task_index[task], None, event))
        context = pb.Context(type_id=run_type, name=run)
        _, art_ids, _ = store.put_lineage_subgraph(executions, artifacts, [context], edges)
        for (a, _), mlmd_id in zip(new, art_ids, strict=True):
            artifact_ids[a] = mlmd_id
    return artifact_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", required=True, help="JSON written by bench/lineage.py")
    ap.add_argument("--hops", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--db", help="MLMD SQLite file (default: a fresh one under /tmp)")
    args = ap.parse_args()

    with open(args.graph) as fh:
        graph = json.load(fh)
    path = args.db or os.path.join(tempfile.mkdtemp(prefix="mlmd-lineage-"), "mlmd.sqlite")
    store = open_store(path)
    t0 = time.perf_counter()
    ids = seed(store, graph)
    seed_s = time.perf_counter() - t0

    samples: list[float] = []
    nodes = edges = 0
    roots = [ids[a] for a in graph["roots"]]
    for k in range(args.warmup + args.repeats):
        options = pb.LineageSubgraphQueryOptions(
            starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(
                filter_query=f"id = {roots[k % len(roots)]}"
            ),
            max_num_hops=args.hops,
            direction=pb.LineageSubgraphQueryOptions.UPSTREAM,
        )
        t0 = time.perf_counter()
        subgraph = store.get_lineage_subgraph(options)
        ms = (time.perf_counter() - t0) * 1000
        nodes = len(subgraph.artifacts) + len(subgraph.executions) - 1  # without the root
        edges = len(subgraph.events)
        if k >= args.warmup:
            samples.append(ms)
    samples.sort()
    print(
        json.dumps(
            {
                "version": mlmd_version,
                "tasks": len(graph["tasks"]),
                "seed_seconds": round(seed_s, 1),
                "n": len(samples),
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(samples[max(0, math.ceil(0.95 * len(samples)) - 1)], 2),
                "max_ms": round(samples[-1], 2),
                "nodes": nodes,
                "edges": edges,
            }
        )
    )


if __name__ == "__main__":
    main()
