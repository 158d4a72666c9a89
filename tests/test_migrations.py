"""One migration tree: an empty database upgrades to head on every dialect and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

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
