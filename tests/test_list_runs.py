"""ListRuns on every dialect: skip_count, keyset pages with MySQL index hints, filters."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from kfpd.db.engine import Database
from kfpd.db.listing import ListRequest
from kfpd.db.models import Run
from kfpd.domain.enums import RunState, StorageState
from kfpd.schemas.runs import RunCreate
from kfpd.services import runs
from tests.conftest import CORPUS, require_corpus
from tests.helpers import ok

require_corpus()

API = "/apis/v2beta1"
ADD_SPEC = yaml.safe_load((CORPUS / "critical" / "add_numbers.yaml").read_bytes())


def _create_runs(api: TestClient, names: list[str]) -> list[str]:
    return [
        ok(
            api.post(
                f"{API}/runs",
                json={
                    "display_name": name,
                    "pipeline_spec": ADD_SPEC,
                    "runtime_config": {"parameters": {"a": 1, "b": 2}},
                },
            )
        )["run_id"]
        for name in names
    ]


def _list(api: TestClient, **params: Any) -> Any:
    return ok(api.get(f"{API}/runs", params=params))


def test_skip_count_leaves_total_size_out_and_pages_unchanged(api: TestClient) -> None:
    ids = _create_runs(api, [f"r{i}" for i in range(5)])
    counted = _list(api, page_size=2, sort_by="created_at desc")
    assert counted["total_size"] == 5
    skipped = _list(api, page_size=2, sort_by="created_at desc", skip_count="true")
    assert skipped["total_size"] == 0
    assert [r["run_id"] for r in skipped["runs"]] == [r["run_id"] for r in counted["runs"]]
    # The next pages follow the same order, and the flag may change between pages.
    seen = [r["run_id"] for r in skipped["runs"]]
    token = skipped["next_page_token"]
    while token:
        page = _list(api, page_size=2, page_token=token, skip_count="true")
        assert page["total_size"] == 0
        seen += [r["run_id"] for r in page["runs"]]
        token = page.get("next_page_token")
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert _list(api, skip_count="false")["total_size"] == 5
    assert _list(api, skip_count="")["total_size"] == 5


def test_bad_skip_count_is_a_400(api: TestClient) -> None:
    response = api.get(f"{API}/runs", params={"skip_count": "maybe"})
    assert response.status_code == 400, response.text
    assert "skip_count must be true or false" in response.json()["message"]


def _seed_runs(db: Database) -> None:
    """Twelve runs: every third CANCELED, every fourth archived, created_at ties in pairs."""
    with db.write_session() as s:
        ids = [
            runs.create_run(
                s,
                RunCreate.model_validate(
                    {
                        "display_name": f"run-{i:02d}",
                        "pipeline_spec": ADD_SPEC,
                        "runtime_config": {"parameters": {"a": 1, "b": 2}},
                    }
                ),
            ).id
            for i in range(12)
        ]
    for i, run_id in enumerate(ids):
        with db.write_session() as s:
            if i % 3 == 0:
                runs.terminate_run(s, run_id)
            if i % 4 == 0:
                runs.set_storage_state(s, run_id, StorageState.ARCHIVED)
            s.get_one(Run, run_id).created_at = 1_000_000 * (i // 2)


def _walk(db: Database, request: ListRequest, experiment_id: str | None) -> list[str]:
    names: list[str] = []
    while True:
        with db.read_session() as s:
            page = runs.list_runs(s, namespace="", experiment_id=experiment_id, request=request)
        names += [v.run.display_name for v in page.items]
        if not page.next_page_token:
            return names
        request = ListRequest(request.page_size, page.next_page_token)


@pytest.mark.parametrize(
    ("by_experiment", "predicate", "sort_by", "index"),
    [
        (False, None, "created_at desc", "ix_runs_created_at_id"),
        (False, ("EQUALS", "state", "CANCELED"), "created_at desc", "ix_runs_state_created_at_id"),
        (False, ("NOT_EQUALS", "storage_state", "ARCHIVED"), "created_at", "ix_runs_created_at_id"),
        (False, ("EQUALS", "state", "CANCELED"), "display_name desc", None),
        (
            True,
            ("NOT_EQUALS", "storage_state", "ARCHIVED"),
            "created_at desc",
            "ix_runs_experiment_id_created_at_id_storage_state",
        ),
    ],
)
def test_pages_follow_the_order_and_name_their_index_on_mysql(
    db: Database,
    by_experiment: bool,
    predicate: tuple[str, str, str] | None,
    sort_by: str,
    index: str | None,
) -> None:
    _seed_runs(db)
    with db.read_session() as s:
        rows = list(s.scalars(select(Run)))
    experiment_id = rows[0].experiment_id if by_experiment else None
    assert all(r.experiment_id == rows[0].experiment_id for r in rows)
    if predicate is not None:
        op, key, value = predicate
        flt = json.dumps({"predicates": [{"operation": op, "key": key, "string_value": value}]})
        wanted = int(StorageState[value] if key == "storage_state" else RunState[value])
        rows = [r for r in rows if (getattr(r, key) == wanted) == (op == "EQUALS")]
    else:
        flt = None
    field, _, direction = sort_by.partition(" ")
    rows.sort(key=lambda r: (getattr(r, field), r.id), reverse=direction == "desc")

    statements: list[str] = []

    def capture(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        names = _walk(db, ListRequest(page_size=2, sort_by=sort_by, filter=flt), experiment_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert names == [r.display_name for r in rows]
    pages = [st for st in statements if "FROM runs" in st and "LIMIT" in st]
    assert len(pages) == max(1, -(-len(rows) // 2))
    hinted = {"FORCE INDEX" in st for st in pages}
    if db.dialect in {"mysql", "mariadb"} and index is not None:
        assert all(f"FORCE INDEX ({index})" in st for st in pages), pages[0]
    else:
        assert hinted == {False}, pages[0]


def _substring(value: str) -> str:
    return json.dumps(
        {
            "predicates": [
                {"operation": "IS_SUBSTRING", "key": "display_name", "string_value": value}
            ]
        }
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("etl", {"Nightly-ETL 2024", "etl-small", "Weekly-Etl"}),
        ("ETL", {"Nightly-ETL 2024", "etl-small", "Weekly-Etl"}),
        ("nightly-etl", {"Nightly-ETL 2024"}),
        ("TRAIN", {"train_50%"}),
        # _ and % are literal characters, not wildcards ("etl-small" has "l-s" and "t...s").
        ("l_s", set()),
        ("t%s", set()),
        ("N_50%", {"train_50%"}),
    ],
)
def test_is_substring_ignores_case_on_every_dialect(
    api: TestClient, value: str, expected: set[str]
) -> None:
    _create_runs(api, ["Nightly-ETL 2024", "etl-small", "Weekly-Etl", "train_50%", "other"])
    body = _list(api, filter=_substring(value))
    assert {r["display_name"] for r in body.get("runs", [])} == expected
    assert body["total_size"] == len(expected)
