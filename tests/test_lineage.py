"""Lineage API on SQLite, PostgreSQL and MariaDB: a multi-run graph recorded through the HTTP
task/artifact API (as a launcher would), read back upstream, downstream and both ways, checked
against explicit expectations and against a breadth-first walk done here in Python."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from kfpd.client.http import KfpdApiError, KfpdClient
from tests.conftest import CORPUS, require_corpus
from tests.helpers import ok

require_corpus()

API = "/apis/v2beta1"
SPEC = yaml.safe_load((CORPUS / "critical" / "add_numbers.yaml").read_text())
INPUTS = {
    "COMPONENT_DEFAULT_INPUT",
    "TASK_OUTPUT_INPUT",
    "COMPONENT_INPUT",
    "RUNTIME_VALUE_INPUT",
    "COLLECTED_INPUTS",
    "ITERATOR_INPUT",
    "ITERATOR_INPUT_RAW",
}
OUTPUTS = {"OUTPUT", "ITERATOR_OUTPUT", "ONE_OF_OUTPUT"}


@dataclass
class Graph:
    """What the test recorded, by readable name, and the rules' own walk over it."""

    api: TestClient
    ids: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # id -> readable name
    kinds: dict[str, str] = field(default_factory=dict)  # id -> TASK | ARTIFACT
    task_types: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)
    artifact_types: dict[str, str] = field(default_factory=dict)
    links: list[tuple[str, str, str, str]] = field(default_factory=list)  # artifact, task, io, key

    def run(self, name: str, namespace: str) -> str:
        exp = ok(
            self.api.post(
                f"{API}/experiments", json={"display_name": f"exp-{name}", "namespace": namespace}
            )
        )
        run = ok(
            self.api.post(
                f"{API}/runs",
                json={
                    "display_name": name,
                    "experiment_id": exp["experiment_id"],
                    "pipeline_spec": SPEC,
                    "runtime_config": {"parameters": {"a": 1, "b": 2}},
                },
            )
        )
        self.ids[name] = run["run_id"]
        self.namespaces[run["run_id"]] = namespace
        return str(run["run_id"])

    def task(self, run: str, name: str, ttype: str = "RUNTIME", **extra: Any) -> str:
        run_id = self.ids[run]
        body = {
            "name": name,
            "display_name": name.title(),
            "type": ttype,
            "scope_path": f"root.{name}",
            "state": "RUNNING",
            **extra,
        }
        task = ok(self.api.post(f"{API}/runs/{run_id}/tasks", json=body))
        self._remember(name, task["task_id"], "TASK", self.namespaces[run_id])
        self.task_types[task["task_id"]] = ttype
        return str(task["task_id"])

    def finish(self, run: str, task: str, state: str = "SUCCEEDED") -> None:
        run_id, task_id = self.ids[run], self.ids[task]
        ok(self.api.patch(f"{API}/runs/{run_id}/tasks/{task_id}", json={"state": state}))

    def produce(
        self,
        run: str,
        task: str,
        name: str,
        atype: str = "Dataset",
        io: str = "OUTPUT",
        *,
        reuse: bool = False,
        iteration: int | None = None,
    ) -> str:
        artifact: dict[str, Any] = {"name": name, "type": atype, "uri": f"mem://{name}"}
        if atype == "Metric":
            artifact["number_value"] = 1.0
        req: dict[str, Any] = {
            "run_id": self.ids[run],
            "task_id": self.ids[task],
            "producer_key": name,
            "type": io,
            "artifact": artifact,
            "reuse_if_exists": reuse,
        }
        if iteration is not None:
            req["iteration_index"] = iteration
        (made,) = ok(self.api.post(f"{API}/artifacts:batchCreate", json={"artifacts": [req]}))[
            "artifacts"
        ]
        self._remember(name, made["artifact_id"], "ARTIFACT", self.namespaces[self.ids[run]])
        self.artifact_types[made["artifact_id"]] = atype
        self.links.append((made["artifact_id"], self.ids[task], io, name))
        return str(made["artifact_id"])

    def link(self, run: str, artifact: str, task: str, io: str, key: str) -> None:
        body = {
            "artifact_id": self.ids[artifact],
            "task_id": self.ids[task],
            "run_id": self.ids[run],
            "type": io,
            "producer": {"task_name": "upstream"},
            "key": key,
        }
        ok(self.api.post(f"{API}/artifact_tasks", json={"artifact_task": body}))
        self.links.append((self.ids[artifact], self.ids[task], io, key))

    def _remember(self, name: str, ident: str, kind: str, namespace: str) -> None:
        if name in self.ids and self.ids[name] != ident:
            raise AssertionError(f"two nodes named {name!r}")
        self.ids[name] = ident
        self.names[ident] = name
        self.kinds[ident] = kind
        self.namespaces[ident] = namespace

    # -- the oracle: the contract's rules, walked breadth-first in Python

    def edges(self) -> set[tuple[str, str, str, str]]:
        """Data-flow edges (source, target, io, key) that the contract counts."""
        out = set()
        for artifact, task, io, key in self.links:
            if io in OUTPUTS and self.task_types[task] in {"RUNTIME", "IMPORTER"}:
                out.add((task, artifact, io, key))
            elif io in INPUTS and self.task_types[task] == "RUNTIME":
                out.add((artifact, task, io, key))
        return out

    def walk(
        self, root: str, direction: str, max_hops: int, namespace: str | None = None
    ) -> dict[str, int]:
        """Breadth-first from ``root`` in one direction: node id -> smallest hop."""
        edges = self.edges()
        hops = {self.ids[root]: 0}
        queue = deque([self.ids[root]])
        while queue:
            node = queue.popleft()
            if hops[node] == max_hops:
                continue
            for src, dst, _, _ in edges:
                nxt = src if direction == "UPSTREAM" and dst == node else None
                if direction == "DOWNSTREAM" and src == node:
                    nxt = dst
                if nxt is None or nxt in hops:
                    continue
                if namespace is not None and self.namespaces[nxt] != namespace:
                    continue
                hops[nxt] = hops[node] + 1
                queue.append(nxt)
        return hops

    def expected(
        self, root: str, direction: str, max_hops: int, namespace: str | None = None
    ) -> dict[str, tuple[int, str]]:
        """node name -> (hop, direction): each node at its smallest hop, upstream first."""
        found: dict[str, tuple[int, str]] = {}
        for d in ["UPSTREAM", "DOWNSTREAM"] if direction == "BOTH" else [direction]:
            for node, hop in self.walk(root, d, max_hops, namespace).items():
                name = self.names[node]
                if node != self.ids[root] and (name not in found or hop < found[name][0]):
                    found[name] = (hop, d)
        return found

    def expected_edges(
        self, root: str, direction: str, max_hops: int
    ) -> set[tuple[str, str, str, str]]:
        """For each node, the edges that reach it at its hop from a node one hop nearer (the
        root included) in the walk of the node's direction."""
        nodes = self.expected(root, direction, max_hops)
        walks = {
            d: self.walk(root, d, max_hops)
            for d in (["UPSTREAM", "DOWNSTREAM"] if direction == "BOTH" else [direction])
        }
        out = set()
        for src, dst, io, key in self.edges():
            for far, near, d in ((src, dst, "UPSTREAM"), (dst, src, "DOWNSTREAM")):
                if self.names[far] not in nodes or d not in walks:
                    continue
                hop, far_direction = nodes[self.names[far]]
                if far_direction == d and walks[d].get(near) == hop - 1:
                    out.add((self.names[src], self.names[dst], io, key))
        return out


@pytest.fixture
def graph(api: TestClient) -> Graph:
    """Three runs in two namespaces.

    run-a (team-a): importer -> raw; prep(raw) -> clean, stats; a loop trains train-0/1 on
      clean -> model-0/1 (ITERATOR_OUTPUT); pick(models, stats) -> best (ONE_OF_OUTPUT).
      A DAG group task carries propagated copies of links (input clean, output best, output
      model-0) that must not count.
    run-b (team-a): importer-b re-imports raw (the same artifact, a second producer link);
      deploy(best from run-a, raw) -> endpoint; a failed task also consumed endpoint.
    run-c (team-b): spy(best from team-a) -> leak, and its own chain seed -> c-step -> c-out,
      where c-step also outputs seed again (a cycle).
    """
    g = Graph(api)
    g.run("run-a", "team-a")
    g.task("run-a", "importer", "IMPORTER")
    g.produce("run-a", "importer", "raw", reuse=True)
    g.task("run-a", "prep")
    g.link("run-a", "raw", "prep", "TASK_OUTPUT_INPUT", "raw")
    g.produce("run-a", "prep", "clean")
    g.produce("run-a", "prep", "stats", "Metric")
    g.task("run-a", "inner", "DAG")
    for i in range(2):
        g.task("run-a", f"train-{i}", type_attributes={"iteration_index": i})
        g.link("run-a", "clean", f"train-{i}", "ITERATOR_INPUT", "data")
        g.produce("run-a", f"train-{i}", f"model-{i}", "Model", "ITERATOR_OUTPUT", iteration=i)
    g.task("run-a", "pick")
    g.link("run-a", "model-0", "pick", "COLLECTED_INPUTS", "models")
    g.link("run-a", "model-1", "pick", "COLLECTED_INPUTS", "models")
    g.link("run-a", "stats", "pick", "TASK_OUTPUT_INPUT", "stats")
    g.produce("run-a", "pick", "best", "Model", "ONE_OF_OUTPUT")
    # Propagated copies on the DAG group: not edges.
    g.link("run-a", "clean", "inner", "COMPONENT_INPUT", "data")
    g.link("run-a", "best", "inner", "OUTPUT", "best")
    g.link("run-a", "model-0", "inner", "OUTPUT", "model")
    for name in ("importer", "prep", "train-0", "train-1", "pick"):
        g.finish("run-a", name)

    g.run("run-b", "team-a")
    g.task("run-b", "importer-b", "IMPORTER")
    assert g.produce("run-b", "importer-b", "raw", reuse=True) == g.ids["raw"]
    g.task("run-b", "deploy")
    g.link("run-b", "best", "deploy", "COMPONENT_INPUT", "model")
    g.link("run-b", "raw", "deploy", "RUNTIME_VALUE_INPUT", "sample")
    g.link("run-b", "raw", "deploy", "COMPONENT_DEFAULT_INPUT", "fallback")
    g.produce("run-b", "deploy", "endpoint", "Artifact")
    g.task("run-b", "smoke")
    g.link("run-b", "endpoint", "smoke", "TASK_OUTPUT_INPUT", "endpoint")
    g.finish("run-b", "smoke", "FAILED")

    g.run("run-c", "team-b")
    g.task("run-c", "spy")
    g.link("run-c", "best", "spy", "COMPONENT_INPUT", "model")
    g.produce("run-c", "spy", "leak")
    g.task("run-c", "c-seed", "IMPORTER")
    g.produce("run-c", "c-seed", "seed")
    g.task("run-c", "c-step")
    g.link("run-c", "seed", "c-step", "TASK_OUTPUT_INPUT", "in")
    g.produce("run-c", "c-step", "c-out", "HTML")
    # A cycle: c-step also writes back the artifact it read.
    g.link("run-c", "seed", "c-step", "OUTPUT", "seed-again")
    return g


def _get(api: TestClient, g: Graph, root: str, **params: Any) -> Any:
    kind = "tasks" if g.kinds[g.ids[root]] == "TASK" else "artifacts"
    return api.get(f"{API}/{kind}/{g.ids[root]}/lineage", params=params)


def _all_pages(api: TestClient, g: Graph, root: str, **params: Any) -> list[dict[str, Any]]:
    pages = [ok(_get(api, g, root, **params))]
    while "next_page_token" in pages[-1]:
        pages.append(ok(_get(api, g, root, **params, page_token=pages[-1]["next_page_token"])))
        assert len(pages) < 100
    return pages


def _named(g: Graph, body: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {g.names[n["id"]]: (n["hop"], n["direction"]) for n in body["nodes"]}


def _named_edges(g: Graph, body: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (g.names[e["source_id"]], g.names[e["target_id"]], e["io_type"], e["key"])
        for e in body["edges"]
    }


def test_upstream_of_an_artifact_hop_by_hop(api: TestClient, graph: Graph) -> None:
    g = graph
    body = ok(_get(api, g, "best", direction="UPSTREAM", max_hops=5))
    assert body["root"] == {"kind": "ARTIFACT", "id": g.ids["best"]}
    assert _named(g, body) == {
        "pick": (1, "UPSTREAM"),
        "model-0": (2, "UPSTREAM"),
        "model-1": (2, "UPSTREAM"),
        "stats": (2, "UPSTREAM"),
        "train-0": (3, "UPSTREAM"),
        "train-1": (3, "UPSTREAM"),
        "prep": (3, "UPSTREAM"),
        "clean": (4, "UPSTREAM"),
        "raw": (4, "UPSTREAM"),
        # raw has two producers: run-a's importer and run-b's, which re-imported it.
        "importer": (5, "UPSTREAM"),
        "importer-b": (5, "UPSTREAM"),
    }
    assert body["total_size"] == 11
    assert "next_page_token" not in body
    # Ordered by (hop, kind, id); ARTIFACT before TASK within a hop.
    keys = [(n["hop"], n["kind"], n["id"]) for n in body["nodes"]]
    assert keys == sorted(keys)
    # The group task "inner" and its propagated copies never appear.
    assert "inner" not in _named(g, body)
    assert _named_edges(g, body) == {
        ("pick", "best", "ONE_OF_OUTPUT", "best"),
        ("model-0", "pick", "COLLECTED_INPUTS", "models"),
        ("model-1", "pick", "COLLECTED_INPUTS", "models"),
        ("stats", "pick", "TASK_OUTPUT_INPUT", "stats"),
        ("train-0", "model-0", "ITERATOR_OUTPUT", "model-0"),
        ("train-1", "model-1", "ITERATOR_OUTPUT", "model-1"),
        ("prep", "stats", "OUTPUT", "stats"),
        # clean reaches hop 4 through both trainers: both edges are drawn.
        ("clean", "train-0", "ITERATOR_INPUT", "data"),
        ("clean", "train-1", "ITERATOR_INPUT", "data"),
        ("raw", "prep", "TASK_OUTPUT_INPUT", "raw"),
        ("importer", "raw", "OUTPUT", "raw"),
        ("importer-b", "raw", "OUTPUT", "raw"),
    }
    pick = next(n for n in body["nodes"] if n["id"] == g.ids["pick"])
    assert pick == {
        "kind": "TASK",
        "id": g.ids["pick"],
        "hop": 1,
        "direction": "UPSTREAM",
        "name": "pick",
        "display_name": "Pick",
        "type": "RUNTIME",
        "state": "SUCCEEDED",
        "run_id": g.ids["run-a"],
    }
    model = next(n for n in body["nodes"] if n["id"] == g.ids["model-0"])
    assert model == {
        "kind": "ARTIFACT",
        "id": g.ids["model-0"],
        "hop": 2,
        "direction": "UPSTREAM",
        "name": "model-0",
        "type": "Model",
        "uri": "mem://model-0",
        "run_id": g.ids["run-a"],
    }
    # raw's producing run is its first producer's; hop limits cut the walk.
    raw = next(n for n in body["nodes"] if n["id"] == g.ids["raw"])
    assert raw["run_id"] == g.ids["run-a"]
    four = _named(g, ok(_get(api, g, "best", direction="UPSTREAM", max_hops=4)))
    assert set(four) == set(_named(g, body)) - {"importer", "importer-b"}
    one = ok(_get(api, g, "best", direction="UPSTREAM", max_hops=1))
    assert _named(g, one) == {"pick": (1, "UPSTREAM")}
    assert _named_edges(g, one) == {("pick", "best", "ONE_OF_OUTPUT", "best")}


def test_downstream_and_both_across_runs_and_namespaces(api: TestClient, graph: Graph) -> None:
    g = graph
    down = _named(g, ok(_get(api, g, "raw", direction="DOWNSTREAM", max_hops=3)))
    assert down == {
        "prep": (1, "DOWNSTREAM"),
        "deploy": (1, "DOWNSTREAM"),  # run-b consumes raw twice: still one node
        "clean": (2, "DOWNSTREAM"),
        "stats": (2, "DOWNSTREAM"),
        "endpoint": (2, "DOWNSTREAM"),
        "train-0": (3, "DOWNSTREAM"),
        "train-1": (3, "DOWNSTREAM"),
        "pick": (3, "DOWNSTREAM"),
        "smoke": (3, "DOWNSTREAM"),
    }
    body = ok(_get(api, g, "deploy", direction="BOTH", max_hops=2))
    assert _named(g, body) == {
        "best": (1, "UPSTREAM"),
        "raw": (1, "UPSTREAM"),
        "endpoint": (1, "DOWNSTREAM"),
        "pick": (2, "UPSTREAM"),
        "importer": (2, "UPSTREAM"),
        "importer-b": (2, "UPSTREAM"),
        "smoke": (2, "DOWNSTREAM"),
    }
    # Two input links from raw to deploy under different keys: two edges.
    assert {
        ("raw", "deploy", "RUNTIME_VALUE_INPUT", "sample"),
        ("raw", "deploy", "COMPONENT_DEFAULT_INPUT", "fallback"),
        ("deploy", "endpoint", "OUTPUT", "endpoint"),
        ("endpoint", "smoke", "TASK_OUTPUT_INPUT", "endpoint"),
    } <= _named_edges(g, body)
    smoke = next(n for n in body["nodes"] if n["id"] == g.ids["smoke"])
    assert smoke["state"] == "FAILED" and smoke["run_id"] == g.ids["run-b"]

    # Across namespaces without a namespace; within team-a only with one.
    assert "spy" in _named(g, ok(_get(api, g, "best", direction="DOWNSTREAM", max_hops=2)))
    scoped = _named(
        g, ok(_get(api, g, "best", direction="DOWNSTREAM", max_hops=4, namespace="team-a"))
    )
    assert scoped == {
        "deploy": (1, "DOWNSTREAM"),
        "endpoint": (2, "DOWNSTREAM"),
        "smoke": (3, "DOWNSTREAM"),
    }
    # The walk does not pass through another namespace either.
    assert _named(
        g, ok(_get(api, g, "leak", direction="UPSTREAM", max_hops=4, namespace="team-b"))
    ) == {"spy": (1, "UPSTREAM")}
    assert _named(g, ok(_get(api, g, "c-out", namespace="team-b"))) == {
        "c-step": (1, "UPSTREAM"),
        "seed": (2, "UPSTREAM"),
        "c-seed": (3, "UPSTREAM"),
    }


def test_every_root_direction_and_hop_limit_matches_a_python_walk(
    api: TestClient, graph: Graph
) -> None:
    g = graph
    roots = [
        "raw",
        "clean",
        "best",
        "endpoint",
        "prep",
        "pick",
        "deploy",
        "importer",
        "leak",
        "seed",
        "c-step",
    ]
    for root, direction, hops in itertools.product(
        roots, ["UPSTREAM", "DOWNSTREAM", "BOTH"], [1, 2, 3, 7]
    ):
        body = ok(_get(api, g, root, direction=direction, max_hops=hops))
        want = g.expected(root, direction, hops)
        label = f"{root} {direction} {hops}"
        assert _named(g, body) == want, label
        assert body["total_size"] == len(want), label
        assert _named_edges(g, body) == g.expected_edges(root, direction, hops), label
        for ns in ("team-a", "team-b"):
            if g.namespaces[g.ids[root]] != ns:
                continue
            scoped = ok(_get(api, g, root, direction=direction, max_hops=hops, namespace=ns))
            assert _named(g, scoped) == g.expected(root, direction, hops, ns), f"{label} {ns}"


def test_cycles_end_and_each_node_is_listed_once(api: TestClient, graph: Graph) -> None:
    g = graph
    # seed -> c-step -> seed: c-step is one hop upstream (it writes seed) and one hop
    # downstream (it reads seed); the tie goes to UPSTREAM, and the root is never a node.
    body = ok(_get(api, g, "seed", direction="BOTH", max_hops=9))
    assert _named(g, body) == {
        "c-seed": (1, "UPSTREAM"),
        "c-step": (1, "UPSTREAM"),
        "c-out": (2, "DOWNSTREAM"),
    }
    # c-out hangs off c-step, which is listed as upstream: its edge is drawn all the same.
    assert _named_edges(g, body) == {
        ("c-seed", "seed", "OUTPUT", "seed"),
        ("c-step", "seed", "OUTPUT", "seed-again"),
        ("c-step", "c-out", "OUTPUT", "c-out"),
    }
    up = _named(g, ok(_get(api, g, "c-out", direction="UPSTREAM", max_hops=100)))
    assert up == {"c-step": (1, "UPSTREAM"), "seed": (2, "UPSTREAM"), "c-seed": (3, "UPSTREAM")}


def test_group_tasks_and_their_copies_are_not_lineage(api: TestClient, graph: Graph) -> None:
    g = graph
    body = ok(_get(api, g, "inner", max_hops=10))
    assert body["nodes"] == [] and body["edges"] == [] and body["total_size"] == 0
    downstream_of_clean = _named(g, ok(_get(api, g, "clean", direction="DOWNSTREAM", max_hops=10)))
    assert "inner" not in downstream_of_clean
    upstream_of_model = _named(g, ok(_get(api, g, "model-0", direction="UPSTREAM", max_hops=10)))
    assert set(upstream_of_model) == {"train-0", "clean", "prep", "raw", "importer", "importer-b"}


def test_filters_keep_the_walk_but_trim_the_nodes(api: TestClient, graph: Graph) -> None:
    g = graph
    full = _named(g, ok(_get(api, g, "deploy", direction="UPSTREAM", max_hops=6)))
    tasks = ok(_get(api, g, "deploy", direction="UPSTREAM", max_hops=6, node_kind="TASK"))
    assert _named(g, tasks) == {k: v for k, v in full.items() if g.kinds[g.ids[k]] == "TASK"}
    assert tasks["total_size"] == len(_named(g, tasks))
    # Edges still reach the (filtered-out) artifacts one hop nearer.
    assert ("train-0", "model-0", "ITERATOR_OUTPUT", "model-0") in _named_edges(g, tasks)
    models = ok(
        _get(
            api,
            g,
            "deploy",
            direction="UPSTREAM",
            max_hops=6,
            node_kind="ARTIFACT",
            artifact_type="Model",
        )
    )
    assert set(_named(g, models)) == {"best", "model-0", "model-1"}
    # artifact_type filters artifacts only; names are case-insensitive, numbers work too.
    mixed = _named(
        g, ok(_get(api, g, "deploy", direction="UPSTREAM", max_hops=6, artifact_type="METRIC"))
    )
    assert {k for k in mixed if g.kinds[g.ids[k]] == "ARTIFACT"} == {"stats"}
    assert {k for k in mixed if g.kinds[g.ids[k]] == "TASK"} == {
        k for k in full if g.kinds[g.ids[k]] == "TASK"
    }
    by_number = _named(
        g, ok(_get(api, g, "deploy", direction="UPSTREAM", max_hops=6, artifact_type="6"))
    )
    assert by_number == mixed
    # Empty parameters mean unset.
    empty = ok(
        _get(
            api,
            g,
            "deploy",
            direction="",
            max_hops="",
            node_kind="",
            artifact_type="",
            namespace="",
        )
    )
    assert _named(g, empty) == g.expected("deploy", "BOTH", 3)


@pytest.mark.parametrize("page_size", [1, 2, 3, 5])
def test_pages_have_no_duplicates_and_no_gaps(
    api: TestClient, graph: Graph, page_size: int
) -> None:
    g = graph
    params = {"direction": "BOTH", "max_hops": 8}
    whole = ok(_get(api, g, "clean", **params))
    pages = _all_pages(api, g, "clean", **params, page_size=page_size)
    ids = [n["id"] for p in pages for n in p["nodes"]]
    assert ids == [n["id"] for n in whole["nodes"]]
    assert len(ids) == len(set(ids)) == whole["total_size"]
    assert all(len(p["nodes"]) == page_size for p in pages[:-1])
    assert 1 <= len(pages[-1]["nodes"]) <= page_size
    # A page that a short walk fills leaves total_size out; where given, it is exact.
    assert {p.get("total_size", whole["total_size"]) for p in pages} == {whole["total_size"]}
    assert "total_size" in pages[-1]
    edges = [e for p in pages for e in p["edges"]]
    assert len(edges) == len({tuple(sorted(e.items())) for e in edges})
    assert {tuple(sorted(e.items())) for e in edges} == {
        tuple(sorted(e.items())) for e in whole["edges"]
    }


def test_wide_first_pages_walk_only_as_far_as_they_need(api: TestClient, graph: Graph) -> None:
    g = graph
    # raw, downstream: 2 nodes at hop 1 and 3 at hop 2 fill a page of 4 without walking the
    # 50 hops asked for, so the total is left out; the same page comes out of the full walk.
    short = ok(_get(api, g, "raw", direction="DOWNSTREAM", max_hops=50, page_size=4))
    assert "total_size" not in short and "next_page_token" in short
    whole = ok(_get(api, g, "raw", direction="DOWNSTREAM", max_hops=50, page_size=1000))
    assert whole["total_size"] == len(g.expected("raw", "DOWNSTREAM", 50)) > 4
    assert short["nodes"] == whole["nodes"][:4]
    assert short["edges"] == whole["edges"][: len(short["edges"])]
    # A page that the short walk cannot fill walks all the way and counts.
    small = ok(_get(api, g, "c-out", direction="UPSTREAM", max_hops=50, page_size=4))
    assert small["total_size"] == 3 and "next_page_token" not in small


def test_page_token_is_bound_to_its_query(api: TestClient, graph: Graph) -> None:
    g = graph
    first = ok(_get(api, g, "clean", max_hops=5, page_size=2))
    token = first["next_page_token"]
    # The same query continues (page_size may change) ...
    ok(_get(api, g, "clean", max_hops=5, page_size=4, page_token=token))
    # ... any other root, direction, hop limit or filter is refused.
    for other in (
        {"max_hops": 6},
        {"max_hops": 5, "direction": "UPSTREAM"},
        {"max_hops": 5, "node_kind": "TASK"},
        {"max_hops": 5, "artifact_type": "Model"},
        {"max_hops": 5, "namespace": "team-a"},
    ):
        r = _get(api, g, "clean", page_token=token, **other)
        assert r.status_code == 400, other
        assert "another lineage query" in r.json()["message"]
    r = _get(api, g, "stats", max_hops=5, page_token=token)
    assert r.status_code == 400
    for garbage in ("nope", "e30", "eyJxIjpbXSwiYWZ0ZXIiOlsxLDksIngiXX0"):
        r = _get(api, g, "clean", max_hops=5, page_token=garbage)
        assert r.status_code == 400 and "page_token" in r.json()["message"], garbage


def test_unknown_roots_and_bad_parameters(api: TestClient, graph: Graph) -> None:
    g = graph
    for path in ("artifacts", "tasks"):
        r = api.get(f"{API}/{path}/no-such-id/lineage")
        assert r.status_code == 404, r.text
        assert r.json()["code"] == 5 and "no-such-id" in r.json()["message"]
    # A task id is not an artifact id.
    assert api.get(f"{API}/artifacts/{g.ids['prep']}/lineage").status_code == 404
    # Another namespace's root is unknown to that namespace.
    r = _get(api, g, "best", namespace="team-b")
    assert r.status_code == 404
    bad = [
        ({"direction": "SIDEWAYS"}, "direction"),
        ({"max_hops": 0}, "max_hops"),
        ({"max_hops": 101}, "max_hops"),
        ({"max_hops": "three"}, "max_hops"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"node_kind": "EXECUTION"}, "node_kind"),
        ({"artifact_type": "Spreadsheet"}, "artifact_type"),
        ({"artifact_type": "TYPE_UNSPECIFIED"}, "artifact_type"),
    ]
    for params, fragment in bad:
        r = _get(api, g, "best", **params)
        assert r.status_code == 400, (params, r.text)
        body = r.json()
        assert body["code"] == 3 and fragment in body["message"], (params, body)
    # Limits themselves are accepted; lower-case enum names too.
    ok(_get(api, g, "best", max_hops=100, page_size=1000, direction="upstream", node_kind="task"))


@pytest.mark.usefixtures("api")
def test_client_methods_page_through_lineage(live_server: str, graph: Graph) -> None:
    g = graph
    with KfpdClient(live_server) as client:
        first = client.artifact_lineage(
            g.ids["raw"], direction="DOWNSTREAM", max_hops=4, page_size=3
        )
        assert len(first.nodes) == 3 and first.next_page_token
        rest = client.artifact_lineage(
            g.ids["raw"],
            direction="DOWNSTREAM",
            max_hops=4,
            page_size=100,
            page_token=first.next_page_token,
        )
        names = {g.names[n.id] for n in first.nodes + rest.nodes}
        assert names == set(g.expected("raw", "DOWNSTREAM", 4))
        assert rest.total_size == len(names)
        task = client.task_lineage(g.ids["deploy"], direction="UPSTREAM", max_hops=1)
        assert {g.names[n.id] for n in task.nodes} == {"best", "raw"}
        assert {e.io_type.name for e in task.edges} == {
            "COMPONENT_INPUT",
            "RUNTIME_VALUE_INPUT",
            "COMPONENT_DEFAULT_INPUT",
        }
        with pytest.raises(KfpdApiError) as err:
            client.task_lineage("missing")
        assert err.value.status == 404
