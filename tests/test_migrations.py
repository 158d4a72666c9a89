"""One migration tree: an empty database upgrades to head on every dialect and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from kfpd.db.migrate import downgrade, upgrade
from kfpd.db.models import Base
from tests.conftest import DB_PREFIX, fresh_database_url


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_empty_database_upgrades_to_head(dialect: str, tmp_path: Path, worker_id: str) -> None:
    url = fresh_database_url(dialect, tmp_path, f"{DB_PREFIX}_migrate_{worker_id}")
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
    url = fresh_database_url(dialect, tmp_path, f"{DB_PREFIX}_migrate_fold_{worker_id}")
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


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_rows_stored_before_0006_keep_working_with_recurring_runs(
    dialect: str, tmp_path: Path, worker_id: str
) -> None:
    url = fresh_database_url(dialect, tmp_path, f"{DB_PREFIX}_migrate_sched_{worker_id}")
    upgrade(url, "0005")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO experiments (id, namespace, display_name, description,"
                    " created_at, storage_state, last_run_created_at)"
                    " VALUES ('e1', '', 'Default', '', 1, 1, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO runs (id, namespace, experiment_id, display_name, description,"
                    " pipeline_name, pipeline_spec, spec_inline, runtime_config, service_account,"
                    " storage_state, state, state_history, created_at, scheduled_at, finished_at,"
                    " recurring_run_id)"
                    " VALUES ('r1', '', 'e1', 'old', '', '', '{}', 1, '{}', '', 1, 3, '[]', 1, 5,"
                    " 9, 'job-from-before')"
                )
            )
        upgrade(url)
        with engine.begin() as conn:
            row = conn.execute(
                text("SELECT recurring_run_id, scheduled_at, state FROM runs WHERE id = 'r1'")
            ).one()
            assert tuple(row) == ("job-from-before", 5, 3)
            conn.execute(
                text(
                    "INSERT INTO recurring_runs (id, namespace, experiment_id, display_name,"
                    " description, runtime_config, service_account, max_concurrency, cron,"
                    " interval_second, start_time, end_time, timezone, status, no_catchup,"
                    " created_at, updated_at, settled_until, last_index)"
                    " VALUES ('j1', '', 'e1', 'j', '', '{}', '', 1, '', 60, 0, 0, 'UTC', 1, 0,"
                    " 1, 1, 0, 0)"
                )
            )
            slot = (
                "INSERT INTO recurring_run_slots (recurring_run_id, scheduled_at, seq, run_id,"
                " created_at) VALUES ('j1', 60000000, 1, 'r1', 2)"
            )
            conn.execute(text(slot))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(slot))  # a slot is claimed once
        with engine.begin() as conn:
            if dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")  # as kfpd's engine sets it
            conn.execute(text("DELETE FROM experiments WHERE id = 'e1'"))
            assert conn.execute(text("SELECT count(*) FROM recurring_run_slots")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM runs")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_artifacts_stored_before_0011_keep_their_rows_without_session_info(
    dialect: str, tmp_path: Path, worker_id: str
) -> None:
    url = fresh_database_url(dialect, tmp_path, f"{DB_PREFIX}_migrate_store_{worker_id}")
    upgrade(url, "0006")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO artifacts (id, namespace, type, uri, uri_hash, name, description,"
                    " created_at, last_update, metadata)"
                    " VALUES ('a1', '', 2, 's3://b/k', 'h', 'data', '', 1, 1, '{\"rows\": 3}')"
                )
            )
        upgrade(url)
        with engine.begin() as conn:
            row = conn.execute(
                text("SELECT uri, name, store_session_info FROM artifacts WHERE id = 'a1'")
            ).one()
            assert tuple(row) == ("s3://b/k", "data", None)
        downgrade(url, "0006")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT name FROM artifacts")).scalar_one() == "data"
    finally:
        engine.dispose()
