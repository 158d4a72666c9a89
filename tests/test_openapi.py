"""The OpenAPI document tells the truth (api/openapi.py): documented statuses, typed query
parameters, 405 with Allow; schemathesis checks it against the server (SQLite, orchestration
off, a few examples per operation): no server error, no undocumented status, no schema-valid
request rejected (the statuses each operation may answer such a request are in
schemathesis.toml)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from kfpd.api.app import create_app
from kfpd.config import Settings

# Built at import: schemathesis makes one test per operation from the document. (Its
# from_fixture does not work with this pytest.) SQLite in a temporary directory.
_DATA_DIR = tempfile.TemporaryDirectory(prefix="kfpd-openapi-")
_APP = create_app(
    Settings(
        data_dir=Path(_DATA_DIR.name),
        orchestrate=False,
        allowed_hosts=["testserver"],  # the Host schemathesis' ASGI client sends
    )
)
# Strings only the server makes valid (api/openapi.py names their formats): the first page
# (a token of one list is refused by another), and filters every list accepts.
schemathesis.openapi.format("kfp-page-token", st.just(""))
schemathesis.openapi.format("kfp-filter", st.sampled_from(["", '{"predicates": []}']))
_CONFIG = SchemathesisConfig.from_path(Path(__file__).parents[1] / "schemathesis.toml")
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_CONFIG)


@schema.parametrize()
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_server_matches_its_openapi_document(case: Any) -> None:
    # No 5xx, no status the document does not list, no 4xx for a request the document calls
    # valid beyond those schemathesis.toml allows (an unknown id, a conflict, a pipeline spec
    # that is not a valid pipeline).
    case.call_and_validate(
        checks=[not_a_server_error, status_code_conformance, positive_data_acceptance]
    )


def test_documented_statuses_and_types(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, orchestrate=False))
    document = app.openapi()
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    assert len(operations) > 30
    assert all("422" not in op["responses"] and "400" in op["responses"] for op in operations)
    list_runs = document["paths"]["/apis/v2beta1/runs"]["get"]
    params = {p["name"]: p["schema"] for p in list_runs["parameters"]}
    assert params["page_size"]["type"] == "integer"
    create_run = document["paths"]["/apis/v2beta1/runs"]["post"]["responses"]
    assert {"400", "403", "409", "413", "415"} <= set(create_run)
    get_run = document["paths"]["/apis/v2beta1/runs/{run_id}"]["get"]
    view = next(p for p in get_run["parameters"] if p["name"] == "view")["schema"]
    assert view["enum"] == ["DEFAULT", "FULL"] and "404" in get_run["responses"]
    # Rules the server checks are in the document: sortable fields, bounds, required names,
    # no NUL in any body string (free-form values are JsonValue).
    sort = re.compile(params["sort_by"]["pattern"])
    assert sort.search("created_at desc") and not sort.search("pipeline_spec")
    lineage = document["paths"]["/apis/v2beta1/artifacts/{artifact_id}/lineage"]["get"]
    hops = next(p for p in lineage["parameters"] if p["name"] == "max_hops")["schema"]
    assert hops["maximum"] == 100
    schemas = document["components"]["schemas"]
    name = re.compile(schemas["ExperimentCreate"]["properties"]["display_name"]["pattern"])
    assert name.search("x") and not name.search("  ") and not name.search("a\nb")
    recurring = schemas["RecurringRun"]["properties"]["max_concurrency"]["anyOf"]
    assert {"type": "integer", "minimum": 1, "maximum": 10} in recurring
    spec = schemas["RunCreate"]["properties"]["pipeline_spec"]["anyOf"][0]
    assert spec["additionalProperties"] == {"$ref": "#/components/schemas/JsonValue"}
    assert schemas["RuntimeConfig"]["properties"]["pipeline_root"]["anyOf"][0]["pattern"]


def test_unsupported_methods_answer_405_with_allow(api: TestClient) -> None:
    for method in ("TRACE", "PUT"):
        answer = api.request(method, "/apis/v2beta1/runs")
        assert answer.status_code == 405
        assert set(answer.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
        assert answer.json()["code"] == 12
