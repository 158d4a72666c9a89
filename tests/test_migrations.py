"""One migration tree: an empty database upgrades to head on every dialect and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from kfpd.db.migrate import downgrade, upgrade
from kfpd.db.models import Base
from tests.conftest import fresh_database_url


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_empty_database_upgrades_to_head(dialect: str, tmp_path: Path, worker_id: str) -> None:
    url = fresh_database_url(dialect, tmp_path, f"kfpd_migrate_{worker_id}")
    upgrade(url)
    engine = create_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
        assert {
            "experiments",
            "pipelines",
            "pipeline_versions",
            "runs",
            "tasks",
            "artifacts",
            "artifact_tasks",
        } <= names
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()
    downgrade(url, "base")
    upgrade(url)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_runs_stored_before_0005_get_their_folded_names(
    dialect: str, tmp_path: Path, worker_id: str
) -> None:
    url = fresh_database_url(dialect, tmp_path, f"kfpd_migrate_fold_{worker_id}")
    upgrade(url, "0004")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (id, namespace, display_name, description, pipeline_name,"
                    " pipeline_spec, spec_inline, runtime_config, service_account, storage_state,"
                    " state, state_history, created_at, scheduled_at, finished_at)"
                    " VALUES ('r1', '', 'Nightly-ETL', '', '', '{}', 1, '{}', '', 1, 1, '[]',"
                    " 1, 0, 0)"
                )
            )
        upgrade(url)
        with engine.begin() as conn:
            folded = conn.execute(text("SELECT display_name_folded FROM runs")).scalar_one()
            assert folded == "nightly-etl"
            conn.execute(text("UPDATE runs SET display_name = 'Weekly-ETL' WHERE id = 'r1'"))
            folded = conn.execute(text("SELECT display_name_folded FROM runs")).scalar_one()
            assert folded == "weekly-etl", "the database keeps it in step with display_name"
    finally:
        engine.dispose()
