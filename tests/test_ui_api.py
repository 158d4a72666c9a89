"""The UI's server side over HTTP on every dialect: the page and assets, /ui/api read models,
artifact bytes (root confinement, content types, sandbox headers) and clear errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from kfpd.api.routes.ui import ASSET_PREFIX, STATIC_DIR
from tests.helpers import compiled, ok

API = "/apis/v2beta1"


def _seed(api: TestClient, root: Path) -> dict[str, Any]:
    """A small run: ROOT -> make-data (two file artifacts, a metric) -> loop with 2 iterations."""
    run = ok(
        api.post(
            f"{API}/runs",
            json={
                "display_name": "ui-api",
                "pipeline_spec": compiled("ui_demo"),
                "runtime_config": {"parameters": {"lr": 0.2}},
            },
        )
    )
    rid = run["run_id"]
    task = lambda **f: ok(api.post(f"{API}/runs/{rid}/tasks", json={"state": "RUNNING", **f}))  # noqa: E731
    top = task(name="ROOT", type="ROOT", scope_path="root")
    make = task(
        name="make-data",
        type="RUNTIME",
        scope_path="root.exit-handler-1.make-data",
        parent_task_id=top["task_id"],
    )
    (root / "r").mkdir(parents=True, exist_ok=True)
    (root / "r" / "data.csv").write_text("a,b\n1,2\n")
    (root / "r" / "page.html").write_text("<h1>hi</h1><script>alert(1)</script>")
    (root / "r" / "notes.md").write_text("# Title\n\n<b>raw</b>\n")
    (root / "r" / "dir").mkdir()
    (root / "r" / "dir" / "one.txt").write_text("only file\n")
    (root / "r" / "multi").mkdir()
    (root / "r" / "multi" / "a.txt").write_text("a\n")
    (root / "r" / "multi" / "b.bin").write_bytes(b"\x00\x01")
    items = [
        ("data", "Dataset", root / "r" / "data.csv", None),
        ("page", "HTML", root / "r" / "page.html", None),
        ("notes", "Markdown", root / "r" / "notes.md", None),
        ("dir", "Artifact", root / "r" / "dir", None),
        ("multi", "Artifact", root / "r" / "multi", None),
        ("outside", "Artifact", Path("/etc/hostname"), None),
    ]
    reqs = [
        {
            "run_id": rid,
            "task_id": make["task_id"],
            "producer_key": key,
            "artifact": {"name": key, "type": kind, "uri": path.resolve().as_uri()},
        }
        for key, kind, path, _ in items
    ]
    reqs.append(
        {
            "run_id": rid,
            "task_id": make["task_id"],
            "producer_key": "metrics",
            "artifact": {"name": "rows", "type": "Metric", "number_value": 1},
        }
    )
    created = ok(api.post(f"{API}/artifacts:batchCreate", json={"artifacts": reqs}))["artifacts"]
    ids = {a["name"]: a["artifact_id"] for a in created}
    return {"run_id": rid, "make": make["task_id"], "root_task": top["task_id"], "ids": ids}


def test_index_and_assets_are_served_without_external_urls(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert f'<script type="module" src="{ASSET_PREFIX}/js/main.js">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    for asset in ("/js/main.js", "/app.css", "/vendor/dagre/dagre.esm.js"):
        versioned = api.get(ASSET_PREFIX + asset)
        assert versioned.status_code == 200, asset
        assert "immutable" in versioned.headers["cache-control"]
        assert api.get("/ui/static" + asset).headers["cache-control"] == "no-cache"
    # Nothing the UI loads may come from the internet: no absolute URLs in code or styles.
    external = re.compile(
        r"""(?:src|href|url|import|from|fetch)\s*[=(]?\s*["'`]?(?:https?:)?//""", re.I
    )
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".js", ".css", ".html"}:
            assert not external.search(path.read_text()), f"{path} references an external URL"
    assert api.get("/ui/static/missing.js").status_code == 404


def test_run_graph_is_compact_and_conditional(api: TestClient, tmp_path: Path) -> None:
    seeded = _seed(api, tmp_path / "artifacts")
    rid = seeded["run_id"]
    first = api.get(f"/ui/api/runs/{rid}/graph", params={"spec": "true"})
    assert first.status_code == 200
    body = first.json()
    assert body["run"]["run_id"] == rid and body["run"]["state"] == "RUNNING"
    assert body["spec"]["pipelineInfo"]["name"] == "ui-demo"
    assert {t["name"]: t["state"] for t in body["tasks"]} == {
        "ROOT": "RUNNING",
        "make-data": "RUNNING",
    }
    make = next(t for t in body["tasks"] if t["name"] == "make-data")
    assert make["parent"] == seeded["root_task"] and make["type"] == "RUNTIME"
    assert "inputs" not in make and "outputs" not in make
    etag = first.headers["etag"]
    assert (
        api.get(
            f"/ui/api/runs/{rid}/graph", params={"spec": "true"}, headers={"If-None-Match": etag}
        ).status_code
        == 304
    )
    ok(api.patch(f"{API}/runs/{rid}/tasks/{seeded['make']}", json={"state": "SUCCEEDED"}))
    changed = api.get(f"/ui/api/runs/{rid}/graph", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "spec" not in changed.json()
    assert {t["name"]: t["state"] for t in changed.json()["tasks"]}["make-data"] == "SUCCEEDED"
    missing = api.get("/ui/api/runs/nope/graph")
    assert missing.status_code == 404 and missing.json()["message"] == "run 'nope' not found"
    assert api.get(f"/ui/api/runs/{rid}/graph", params={"spec": "maybe"}).status_code == 400


def test_artifact_list_filters_by_run_and_names_producers(api: TestClient, tmp_path: Path) -> None:
    seeded = _seed(api, tmp_path / "artifacts")
    other = _seed(api, tmp_path / "artifacts2")
    page = ok(
        api.get(
            "/ui/api/artifacts",
            params={"run_id": seeded["run_id"], "page_size": 3, "sort_by": "name"},
        )
    )
    assert page["total_size"] == 7
    assert [a["name"] for a in page["artifacts"]] == ["data", "dir", "multi"]
    producer = page["artifacts"][0]["producer"]
    assert producer == {
        "run_id": seeded["run_id"],
        "run_name": "ui-api",
        "task_id": seeded["make"],
        "task_name": "make-data",
        "key": "data",
    }
    rest = ok(
        api.get(
            "/ui/api/artifacts",
            params={"run_id": seeded["run_id"], "page_token": page["next_page_token"]},
        )
    )
    assert len(rest["artifacts"]) == 4
    assert ok(api.get("/ui/api/artifacts"))["total_size"] == 14
    typed = ok(
        api.get(
            "/ui/api/artifacts",
            params={
                "filter": '{"predicates":[{"key":"type","operation":"EQUALS","string_value":"Metric"}]}'
            },
        )
    )
    assert {a["artifact_id"] for a in typed["artifacts"]} == {
        seeded["ids"]["rows"],
        other["ids"]["rows"],
    }
    bad = api.get(
        "/ui/api/artifacts",
        params={"run_id": other["run_id"], "page_token": page["next_page_token"]},
    )
    assert bad.status_code == 400


def test_previews_by_kind(api: TestClient, tmp_path: Path) -> None:
    ids = _seed(api, tmp_path / "artifacts")["ids"]
    preview = lambda name, **p: api.get(f"/ui/api/artifacts/{ids[name]}/preview", params=p)  # noqa: E731
    csv = ok(preview("data"))
    assert (csv["kind"], csv["text"], csv["size"], csv["truncated"]) == (
        "csv",
        "a,b\n1,2\n",
        8,
        False,
    )
    assert ok(preview("page"))["kind"] == "html"
    assert ok(preview("notes"))["kind"] == "markdown"
    single = ok(preview("dir"))  # a directory holding one file previews that file
    assert (single["kind"], single["path"], single["text"]) == ("text", "one.txt", "only file\n")
    listing = ok(preview("multi"))
    assert listing["kind"] == "directory"
    assert [(e["path"], e["size"]) for e in listing["entries"]] == [("a.txt", 2), ("b.bin", 2)]
    assert ok(preview("multi", path="b.bin"))["kind"] == "binary"
    outside = preview("outside")
    assert (
        outside.status_code == 400
        and "outside the server's artifact root" in outside.json()["message"]
    )
    escape = preview("multi", path="../data.csv")
    assert escape.status_code == 400 and "inside the artifact" in escape.json()["message"]
    metric = preview("rows")
    assert metric.status_code == 400 and "no URI" in metric.json()["message"]
    assert api.get("/ui/api/artifacts/nope/preview").status_code == 404


def test_content_and_render_are_sandboxed(api: TestClient, tmp_path: Path) -> None:
    ids = _seed(api, tmp_path / "artifacts")["ids"]
    content = api.get(f"/ui/api/artifacts/{ids['page']}/content")
    assert content.status_code == 200 and content.headers["content-type"].startswith("text/html")
    csp = content.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "script-src" not in csp
    assert content.headers["x-content-type-options"] == "nosniff"
    download = api.get(f"/ui/api/artifacts/{ids['data']}/content", params={"download": "true"})
    assert download.content == b"a,b\n1,2\n"
    assert download.headers["content-disposition"] == 'attachment; filename="data.csv"'
    render = api.get(f"/ui/api/artifacts/{ids['page']}/render")
    assert render.text == "<h1>hi</h1><script>alert(1)</script>"
    assert render.headers["content-security-policy"].startswith("sandbox;")
    markdown = api.get(f"/ui/api/artifacts/{ids['notes']}/render")
    assert "<h1>Title</h1>" in markdown.text and "&lt;b&gt;raw&lt;/b&gt;" in markdown.text
    refused = api.get(f"/ui/api/artifacts/{ids['outside']}/render")
    assert refused.status_code == 400 and "outside the server&#x27;s artifact root" in refused.text
    assert refused.headers["content-security-policy"].startswith("sandbox;")
    assert api.get(f"/ui/api/artifacts/{ids['multi']}/content").status_code == 400
    assert api.get(f"/ui/api/artifacts/{ids['outside']}/content").status_code == 400


def test_symlink_out_of_the_root_is_refused(api: TestClient, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    seeded = _seed(api, root)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (root / "r" / "link.txt").symlink_to(secret)
    (created,) = ok(
        api.post(
            f"{API}/artifacts:batchCreate",
            json={
                "artifacts": [
                    {
                        "run_id": seeded["run_id"],
                        "task_id": seeded["make"],
                        "producer_key": "link",
                        "artifact": {
                            "name": "link",
                            "type": "Artifact",
                            "uri": (root / "r" / "link.txt").as_uri(),
                        },
                    }
                ]
            },
        )
    )["artifacts"]
    response = api.get(f"/ui/api/artifacts/{created['artifact_id']}/content")
    assert response.status_code == 400 and "secret" not in response.text


def test_metrics_and_compare(api: TestClient, tmp_path: Path) -> None:
    first = _seed(api, tmp_path / "a")
    second = _seed(api, tmp_path / "b")
    metrics = ok(api.get(f"/ui/api/runs/{first['run_id']}/metrics"))["metrics"]
    assert [(m["task_name"], m["key"], m["artifact"]["number_value"]) for m in metrics] == [
        ("make-data", "metrics", 1.0)
    ]
    compared = ok(
        api.get(
            "/ui/api/compare", params=[("run_ids", first["run_id"]), ("run_ids", second["run_id"])]
        )
    )
    assert [r["run"]["run_id"] for r in compared["runs"]] == [first["run_id"], second["run_id"]]
    assert compared["runs"][0]["run"]["runtime_config"]["parameters"] == {"lr": 0.2}
    assert "pipeline_spec" not in compared["runs"][0]["run"]
    assert api.get("/ui/api/compare").status_code == 400
    assert (
        api.get("/ui/api/compare", params=[("run_ids", str(i)) for i in range(11)]).status_code
        == 400
    )
    assert api.get("/ui/api/compare", params={"run_ids": "nope"}).status_code == 404
    assert api.get("/ui/api/runs/nope/metrics").status_code == 404
