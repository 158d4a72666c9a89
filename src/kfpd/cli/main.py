"""``kfpd`` commands: server, run, runs, version, migrate."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer
import yaml

from kfpd import __version__
from kfpd.cli.auth import bindings_app, tokens_app
from kfpd.cli.gc import gc as gc_command
from kfpd.cli.mlmd import import_mlmd
from kfpd.cli.runs import run, runs_app
from kfpd.cli.settings import ConfigOption, settings_or_exit

app = typer.Typer(
    help="kfpd: a Kubeflow Pipelines backend in one Python server.", no_args_is_help=True
)
app.command()(run)
app.add_typer(runs_app, name="runs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(bindings_app, name="bindings")
config_app = typer.Typer(help="Inspect kfpd's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.command("import-mlmd")(import_mlmd)
app.command("gc")(gc_command)


@app.command()
def version() -> None:
    """Print the kfpd version."""
    typer.echo(__version__)


@app.command()
def server(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (8888).")] = None,
    db_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where kfpd keeps its database and artifacts (~/.kfpd).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body accepted (32 MiB).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug | info | warning | error (info).")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="json (one object per line) | console.")
    ] = None,
    orchestrate: Annotated[
        bool | None, typer.Option(help="Run pipelines (--no-orchestrate: store runs only).")
    ] = None,
    max_parallel: Annotated[
        int | None, typer.Option(help="Tasks the local executor runs at once (0: CPU count).")
    ] = None,
    cache: Annotated[bool | None, typer.Option(help="Reuse results of cached tasks.")] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A host name clients use to reach kfpd (repeatable; '.example.com' allows "
            "subdomains, '*' any). IP addresses and loopback names are always allowed."
        ),
    ] = None,
    allow_remote_unauthenticated: Annotated[
        bool | None,
        typer.Option(
            help="Confirm listening on a non-loopback address without authentication: anyone "
            "who can reach it can run commands as this user."
        ),
    ] = None,
    launcher_config: Annotated[
        Path | None,
        typer.Option(
            help="Object storage: the kfp-launcher ConfigMap's data as YAML "
            "(defaultPipelineRoot, providers)."
        ),
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="How launchers on other machines reach this server.")
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="What runs tasks: local | ray | kubernetes (local).")
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="ray: the cluster's HOST:PORT.")] = None,
    namespace: Annotated[
        str | None,
        typer.Option(help="kubernetes: namespace for pods (default: the run's, else default)."),
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubernetes: kubeconfig file (default: in-cluster).")
    ] = None,
    launcher_image: Annotated[
        str | None, typer.Option(help="kubernetes: image with the launcher bundle.")
    ] = None,
    scheduler: Annotated[
        bool | None,
        typer.Option(help="Fire recurring runs (--no-scheduler: another server does)."),
    ] = None,
    auth_config: Annotated[
        Path | None,
        typer.Option(help="Multi-user mode: YAML with auth providers and role bindings."),
    ] = None,
    on_stop: Annotated[
        str | None,
        typer.Option(
            help="On a graceful stop: leave running tasks (adopted by the next server), "
            "drain (wait for them) or cancel (kill them)."
        ),
    ] = None,
    step_timeout: Annotated[
        float | None, typer.Option(help="Seconds one orchestration step may take (30).")
    ] = None,
    task_user: Annotated[
        str | None,
        typer.Option(
            help="Run local tasks as this unprivileged user (e.g. nobody; the server runs as "
            "root): they cannot read the run-token key or the database."
        ),
    ] = None,
    task_python: Annotated[
        str | None,
        typer.Option(
            help="The Python interpreter tasks run with (default: the server's; with "
            "--task-user one that user can run)."
        ),
    ] = None,
) -> None:
    """Run the kfpd server (REST API, UI, orchestrator; tasks on the chosen executor).

    Every option can also come from KFPD_<NAME> variables or the --config file; a flag wins
    over a variable, which wins over the file.
    """
    import uvicorn

    from kfpd.api.app import create_app
    from kfpd.api.guard import check_bind
    from kfpd.logs import configure_logging, uvicorn_log_config

    settings = settings_or_exit(
        config,
        host=host,
        port=port,
        db_url=db_url,
        data_dir=data_dir,
        max_body_bytes=max_body_bytes,
        log_level=log_level,
        log_format=log_format,
        orchestrate=orchestrate,
        max_parallel=max_parallel,
        cache_enabled=cache,
        allowed_hosts=allowed_host or None,
        allow_remote_unauthenticated=allow_remote_unauthenticated,
        launcher_config=launcher_config,
        public_url=public_url,
        executor=executor,
        ray_address=ray_address,
        k8s_namespace=namespace,
        kubeconfig=kubeconfig,
        launcher_image=launcher_image,
        scheduler=scheduler,
        auth_config=auth_config,
        on_stop=on_stop,
        step_timeout=step_timeout,
        task_user=task_user,
        task_python=task_python,
    )
    # Files the server and its tasks create (database, logs, artifacts, keys): this user only.
    os.umask(0o077)
    bind = check_bind(
        settings.host,
        authenticated=settings.auth_config is not None,  # multi-user: every caller signs in
        allow_remote_unauthenticated=settings.allow_remote_unauthenticated,
    )
    if bind.message:
        typer.secho(bind.message, err=True, fg="red", bold=True)
    if not bind.allowed:
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_format)
    typer.echo(
        f"kfpd {__version__}: database {settings.masked()['database_url (effective)']}, "
        f"data in {settings.data_dir}"
    )
    from kfpd.authconfig import AuthConfigError
    from kfpd.executors.registry import ExecutorConfigError
    from kfpd.services.mlmd_import import ImportIncomplete
    from kfpd.storage.launcher_config import StorageConfigError

    try:
        application = create_app(settings)
    except (StorageConfigError, ExecutorConfigError) as exc:
        typer.echo(f"kfpd: {exc}", err=True)
        raise typer.Exit(2) from None
    except ImportIncomplete as exc:
        typer.secho(f"kfpd: {exc}", err=True, fg="red", bold=True)
        raise typer.Exit(2) from None
    except AuthConfigError as exc:
        typer.echo(f"kfpd: {exc}", err=True)
        raise typer.Exit(2) from None
    # What is alive now (modules, routes, mappers: ~180k objects) lives as long as the
    # server; frozen, full collections during requests no longer walk it (they took
    # 100-280 ms each under load; see docs/benchmarks.md, list_runs).
    gc.collect()
    gc.freeze()
    uvicorn_config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
    )
    if settings.on_stop == "drain":
        from kfpd.cli.draining import DrainingServer

        DrainingServer(uvicorn_config, application, settings.drain_timeout).run()
    else:
        uvicorn.Server(uvicorn_config).run()


@app.command("launcher-bundle")
def launcher_bundle(
    dest: Annotated[Path, typer.Argument(help="Where to write the zipapp.")] = Path("launcher.pyz"),
) -> None:
    """Write the launcher as one zipapp for pods (needs only python3 in the image)."""
    from kfpd.executors.bundle import build_bundle

    typer.echo(str(build_bundle(dest)))


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (file < env < defaults), passwords masked."""
    settings = settings_or_exit(config)
    typer.echo(yaml.safe_dump(settings.masked(), sort_keys=True).rstrip())


@app.command()
def migrate(
    db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL to upgrade.")] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema (the server also does this at start-up)."""
    from kfpd.db.migrate import upgrade

    settings = settings_or_exit(None, db_url=db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


def main() -> None:
    """The ``kfpd`` command: a server that cannot be reached is one line, not a traceback."""
    try:
        app()
    except httpx.TransportError as exc:
        try:
            where = f"{exc.request.url.scheme}://{exc.request.url.netloc.decode()}"
        except RuntimeError:  # no request attached
            where = "its URL"
        typer.echo(
            f"kfpd: cannot reach the kfpd server at {where}: {exc or type(exc).__name__}. "
            "Is it running? Point the CLI elsewhere with --host URL or KFPD_HOST.",
            err=True,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
