"""The FastAPI application: KFP v2beta1 REST API plus kfpd extensions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kfpd import __version__
from kfpd.api import docs, openapi
from kfpd.api.authn import ProviderChain, providers_for
from kfpd.api.authz import AuthState, PolicySource, authorize
from kfpd.api.errors import install_error_handlers
from kfpd.api.guard import HostPolicy, NulFreeJson, RequestGuard
from kfpd.api.limits import BodySizeLimit
from kfpd.api.metrics import Metrics, RequestTimer
from kfpd.api.routes import (
    artifacts,
    execution,
    experiments,
    lineage,
    pipelines,
    recurring_runs,
    runs,
    tasks,
    ui,
    unimplemented,
)
from kfpd.api.routes import auth as auth_routes
from kfpd.authconfig import load_auth_config
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import current_revision, head_revision, upgrade
from kfpd.domain.tokens import issue_run_token
from kfpd.engine.engine import Engine
from kfpd.engine.retention import RetentionJob
from kfpd.engine.scheduler import Scheduler
from kfpd.executors.base import Executor
from kfpd.executors.registry import WORKSPACE_MOUNT, ExecutorConfig, create_executor
from kfpd.launcher.logsink import MAX_LOG_BYTES_ENV
from kfpd.services import experiments as experiments_svc
from kfpd.services import retention
from kfpd.services.mlmd_import import ImportIncomplete, check_no_incomplete_import
from kfpd.services.orchestration import OrchestratorConfig
from kfpd.services.storage import Storage


def _storage(settings: Settings) -> Storage:
    """Object storage from --launcher-config (a bad file stops the server at start-up)."""
    return Storage.for_server(
        settings.launcher_config, settings.artifact_root, settings.secrets_dir
    )


def _engine(
    settings: Settings, database: Database, executor: Executor | None, storage: Storage
) -> Engine | None:
    if not settings.orchestrate:
        return None
    # Launchers on this machine inherit the server's environment: the per-task log cap.
    os.environ[MAX_LOG_BYTES_ENV] = str(settings.task_log_max_bytes)
    executor_config = ExecutorConfig(
        kind=settings.executor,
        max_parallel=settings.max_parallel,
        work_root=settings.data_dir / "work",
        ray_address=settings.ray_address,
        namespace=settings.k8s_namespace,
        kubeconfig=settings.kubeconfig,
        launcher_image=settings.launcher_image,
        pending_timeout_s=settings.pod_pending_timeout_s,
        on_stop=settings.on_stop,
        task_user=settings.task_user,
        task_dirs=(settings.artifact_root, settings.data_dir / "workspaces"),
        task_python=settings.task_python,
    )
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    secret = settings.run_token_secret()
    if settings.task_user and settings.executor == "local":
        # Tasks run as another user: they may pass through the data directory (not list it)
        # to their own directories; the key, database and logs stay 0600/0700 (the server's).
        settings.data_dir.chmod(0o711)
    if executor is None:
        executor = create_executor(executor_config)
    config = OrchestratorConfig(
        server_url=settings.server_url,
        pipeline_root=storage.default_root,
        token_for=lambda run_id: issue_run_token(secret, run_id, ttl=settings.run_token_ttl),
        cache_enabled=settings.cache_enabled,
        # On Kubernetes a per-run volume holds it (mounted at /kfp-workspace, as upstream).
        workspace_root=(
            WORKSPACE_MOUNT
            if settings.executor == "kubernetes"
            else str((settings.data_dir / "workspaces").resolve())
        ),
        secrets_dir=settings.secrets_dir,
        config_maps_dir=settings.config_maps_dir,
        local_platform=executor_config.applies_platform_locally,
    )
    return Engine(database, executor, config, step_timeout=settings.step_timeout)


def _auth_state(settings: Settings, secret: bytes, database: Database) -> AuthState:
    """Single-user (no auth config): run tokens only. Multi-user: the configured providers."""
    if settings.auth_config is None:
        return AuthState(ProviderChain(providers_for(None, secret, database), strict=False))
    config = load_auth_config(settings.auth_config)
    chain = ProviderChain(providers_for(config, secret, database), strict=True)
    return AuthState(
        chain, multi_user=True, policy_source=PolicySource(config.bindings(), database)
    )


def _private_sqlite_file(url: str) -> None:
    """0600 for a SQLite database (its -wal and -shm files copy the mode when created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    for suffix in ("", "-wal", "-shm"):
        path = Path(parsed.database + suffix)
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _open_database(settings: Settings) -> Database:
    if settings.migrate:
        upgrade(settings.database_url)
    _private_sqlite_file(settings.database_url)
    database = Database(settings.database_url, background_checkpoints=True)
    try:
        check_no_incomplete_import(database)  # never serve a half-imported history
    except ImportIncomplete:
        database.dispose()
        raise
    return database


class _Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def _lifespan(
    database: Database, services: list[Any]
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the background services in order with the app; stop them in reverse."""
    running: list[_Service] = [s for s in services if s is not None]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with database.write_session() as session:  # as upstream: it exists from start-up
            experiments_svc.default_experiment(session, "")
        database.start_background_work()
        for service in running:
            service.start()
        try:
            yield
        finally:
            for service in reversed(running):
                service.stop()
            database.stop_background_work()

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    executor: Executor | None = None,
) -> FastAPI:
    settings = settings or Settings()
    settings.prepare_data_dir()
    if database is None:
        database = _open_database(settings)
    secret = settings.run_token_secret()  # created once, so launchers anywhere get tokens
    auth = _auth_state(settings, secret, database)
    storage = _storage(settings)
    engine = _engine(settings, database, executor, storage)
    scheduler = None
    if engine is not None and settings.scheduler:
        scheduler = Scheduler(
            database, engine.run_created, poll_seconds=settings.scheduler_poll_seconds
        )

    retention_job = _retention_job(settings, database, storage)
    lifespan = _lifespan(database, [engine, scheduler, retention_job])

    app = FastAPI(
        lifespan=lifespan,
        title="kfpd",
        version=__version__,
        description="Kubeflow Pipelines v2beta1 API with native task and artifact metadata.",
        docs_url=None,  # served offline by kfpd.api.docs
        redoc_url=None,
        dependencies=[Depends(authorize)],  # one table decides for every route (api/authz.py)
        # Off unless asked for: FastAPI looks up the OpenTelemetry providers on every request,
        # 1.8 % of the instructions of a launcher's two calls (callgrind, bench/metadata_write
        # workload); kfpd's own metrics are Prometheus (/metrics) and its logs structured.
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.db = database
    app.state.settings = settings
    app.state.engine = engine
    app.state.storage = storage
    app.state.scheduler = scheduler
    app.state.retention = retention_job
    app.state.auth = auth
    install_error_handlers(app)
    openapi.install(app)
    # The launchers' hot routes first: FastAPI matches routes in order.
    for module in (
        execution,
        tasks,
        artifacts,
        runs,
        experiments,
        pipelines,
        recurring_runs,
        lineage,
        auth_routes,
    ):
        app.include_router(module.router)

    @app.get("/apis/v2beta1/healthz", tags=["healthz"])
    def healthz() -> dict[str, Any]:
        return {
            "commit_sha": "",
            "tag_name": __version__,
            "multi_user": auth.multi_user,
            "pipeline_store": "database",
        }

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    metrics = _observe(app, database, engine, scheduler)

    @app.get("/readyz", tags=["healthz"], responses={503: {"description": "Not ready."}})
    def readyz() -> JSONResponse:
        """Ready to serve: database reachable, schema at head, orchestrator alive."""
        checks = _readiness(database, engine)
        ready = all(ok for ok, _ in checks.values())
        body = {
            "ready": ready,
            "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    app.add_api_route(
        "/metrics", lambda: metrics.render(), methods=["GET"], include_in_schema=False
    )
    ui.install(app)  # the web UI at /
    docs.install(app)  # /docs and /redoc without a CDN
    app.include_router(unimplemented.router)  # last: known upstream endpoints kfpd lacks
    app.add_middleware(NulFreeJson)  # inside BodySizeLimit: it buffers bounded bodies only
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    hosts = HostPolicy.build(
        settings.allowed_hosts, settings.host, urlsplit(settings.server_url).hostname
    )
    # Before any other middleware or route: a refused request reaches nothing (but is timed).
    app.add_middleware(RequestGuard, hosts=hosts, multipart_paths=pipelines.MULTIPART_PATHS)
    app.add_middleware(RequestTimer, metrics=metrics)
    return app


def _observe(
    app: FastAPI, database: Database, engine: Engine | None, scheduler: Scheduler | None
) -> Metrics:
    """The app's Prometheus registry: store counts, engine queue, executor slots, DB pool,
    the recurring-run scheduler."""
    metrics = Metrics()
    app.state.metrics = metrics
    metrics.watch_store(database)
    pool = database.write_engine.pool
    gauges: dict[str, tuple[str, Any]] = {
        "kfpd_db_pool_checked_out": (
            "Database connections in use.",
            lambda: float(getattr(pool, "checkedout", lambda: 0)()),
        ),
    }
    if engine is not None:
        gauges["kfpd_engine_queue_depth"] = (
            "Orchestration events waiting for the engine.",
            lambda: float(engine.queue_depth()),
        )
        gauges["kfpd_engine_tasks_running"] = (
            "Task processes the engine is watching.",
            lambda: float(len(engine.running_tasks())),
        )
        slots = getattr(engine.executor, "max_parallel", None)
        if isinstance(slots, int):
            gauges["kfpd_executor_slots"] = ("Tasks the executor runs at once.", lambda: slots)
        engine.task_seconds = metrics.task_seconds.observe
    if scheduler is not None:
        gauges["kfpd_scheduler_runs_fired"] = (
            "Runs the recurring-run scheduler fired since the server started.",
            lambda: float(scheduler.runs_fired),
        )
        gauges["kfpd_scheduler_claim_conflicts"] = (
            "Slots another server claimed first (several servers on one database).",
            lambda: float(scheduler.claim_conflicts),
        )
        gauges["kfpd_scheduler_fire_errors"] = (
            "Firings that failed (kept as the recurring run's error) since start.",
            lambda: float(scheduler.fire_errors),
        )
        gauges["kfpd_scheduler_seconds_since_tick"] = (
            "Seconds since the scheduler last looked at the schedules (lag if it grows).",
            scheduler.seconds_since_tick,
        )
    metrics.watch(gauges)
    return metrics


def _retention_job(settings: Settings, database: Database, storage: Storage) -> RetentionJob | None:
    """The background retention job, when the config sets a policy."""
    config = settings.retention
    if not config.enabled:
        return None
    return RetentionJob(
        database,
        retention.policies_of(config),
        interval_s=config.interval_minutes * 60,
        log_root=settings.log_root,
        artifact_root=settings.artifact_root,
        delete_artifacts=config.delete_artifacts,
        remote_locate=storage.locate,
    )


def _readiness(database: Database, engine: Engine | None) -> dict[str, tuple[bool, str]]:
    checks: dict[str, tuple[bool, str]] = {}
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            at, head = current_revision(connection), head_revision()
        checks["database"] = (True, database.dialect)
        checks["migrations"] = (at == head, f"at {at}, head {head}")
    except Exception as exc:  # any driver error means "not ready", with its text
        checks["database"] = (False, f"{type(exc).__name__}: {exc}")
    if engine is not None:
        alive = engine.alive()
        checks["orchestrator"] = (alive, "running" if alive else "engine thread stopped")
    return checks
