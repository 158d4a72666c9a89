"""``kfpd`` commands: server, run, runs, version, migrate."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer

from kfpd import __version__
from kfpd.cli.runs import run, runs_app
from kfpd.config import Settings, default_data_dir

app = typer.Typer(
    help="kfpd: a Kubeflow Pipelines backend in one Python server.", no_args_is_help=True
)
app.command()(run)
app.add_typer(runs_app, name="runs")


@app.command()
def version() -> None:
    """Print the kfpd version."""
    typer.echo(__version__)


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8888,
    db_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir; env KFPD_DB_URL)."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where kfpd keeps its database and artifacts (~/.kfpd).")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted.")] = 32
    * 1024
    * 1024,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    orchestrate: Annotated[
        bool, typer.Option(help="Run pipelines (--no-orchestrate: store runs only).")
    ] = True,
    max_parallel: Annotated[
        int, typer.Option(help="Tasks the local executor runs at once (0: CPU count).")
    ] = 0,
    cache: Annotated[bool, typer.Option(help="Reuse results of cached tasks.")] = True,
) -> None:
    """Run the kfpd server (REST API, UI, orchestrator with the local executor)."""
    import uvicorn

    from kfpd.api.app import create_app

    settings = Settings(
        data_dir=data_dir or default_data_dir(),
        db_url=db_url,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        orchestrate=orchestrate,
        cache_enabled=cache,
    )
    if max_parallel > 0:
        settings.max_parallel = max_parallel
    typer.echo(f"kfpd {__version__}: database {settings.database_url}, data in {settings.data_dir}")
    application = create_app(settings)
    # What is alive now (modules, routes, mappers: ~180k objects) lives as long as the
    # server; frozen, full collections during requests no longer walk it (they took
    # 100-280 ms each under load; see docs/benchmarks.md, list_runs).
    gc.collect()
    gc.freeze()
    uvicorn.run(application, host=host, port=port, log_level=log_level)


@app.command()
def migrate(
    db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL to upgrade.")] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema (the server also does this at start-up)."""
    from kfpd.db.migrate import upgrade

    settings = Settings(db_url=db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


if __name__ == "__main__":
    app()
