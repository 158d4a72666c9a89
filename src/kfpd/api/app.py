"""The FastAPI application: KFP v2beta1 REST API plus kfpd extensions."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from kfpd import __version__
from kfpd.api.errors import install_error_handlers
from kfpd.api.limits import BodySizeLimit, JsonBodies
from kfpd.api.routes import artifacts, experiments, lineage, pipelines, runs, tasks
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    if database is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.migrate:
            upgrade(settings.database_url)
        database = Database(settings.database_url)
    app = FastAPI(
        title="kfpd",
        version=__version__,
        description="Kubeflow Pipelines v2beta1 API with native task and artifact metadata.",
    )
    app.state.db = database
    app.state.settings = settings
    install_error_handlers(app)
    for module in (experiments, pipelines, runs, tasks, artifacts, lineage):
        app.include_router(module.router)

    @app.get("/apis/v2beta1/healthz", tags=["healthz"])
    def healthz() -> dict[str, Any]:
        return {
            "commit_sha": "",
            "tag_name": __version__,
            "multi_user": False,
            "pipeline_store": "database",
        }

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_middleware(JsonBodies)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
