"""``kfpd import-mlmd``: import a KFP installation's ML Metadata (and KFP database) history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kfpd.config import ConfigFileError, Settings

if TYPE_CHECKING:
    from kfpd.services.mlmd_validate import Validation


class _RichProgress:
    """Runs and executions imported so far, as two rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.runs = progress.add_task("runs", total=None)
        self.executions = progress.add_task("executions", total=None)

    def start(self, runs: int, executions: int) -> None:
        self.progress.update(self.runs, total=runs)
        self.progress.update(self.executions, total=executions)

    def advance(self, runs: int, executions: int) -> None:
        self.progress.advance(self.runs, runs)
        self.progress.advance(self.executions, executions)


def _table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(key, str(value))
    if not counts:
        table.add_row("(nothing)", "0")
    return table


def _print_validation(console: Console, result: Validation) -> None:
    table = Table(title="validation (imported runs)")
    for column in ("", "ML Metadata", "kfpd"):
        table.add_column(column, justify="right")
    for name, (mlmd, kfpd) in result.counts.items():
        table.add_row(name, str(mlmd), str(kfpd))
    console.print(table)
    for line in result.differences:
        console.print(f"[red]difference:[/red] {line}")
    if result.differences:
        raise typer.Exit(1)
    console.print("[green]validation: counts and lineage edges match ML Metadata[/green]")


def import_mlmd(
    mlmd_db: Annotated[
        str,
        typer.Option(
            help="SQLAlchemy URL of the MLMD database, e.g. mysql://root@mysql:3306/metadb "
            "or sqlite:///mlmd.sqlite (read only)."
        ),
    ],
    kfp_db: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of KFP's mlpipeline database (run names, experiments, "
            "pipelines, states, times). Without it, runs come from MLMD alone."
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Import only the runs of this namespace.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Map everything and report, write nothing.")
    ] = False,
    validate: Annotated[
        bool, typer.Option(help="Compare counts and lineage edges with MLMD afterwards.")
    ] = True,
    batch_executions: Annotated[
        int, typer.Option(help="Tasks per transaction (whole runs per batch).")
    ] = 2000,
    db_url: Annotated[
        str | None, typer.Option(help="kfpd's database (default: SQLite in the data dir).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="kfpd's data directory (~/.kfpd).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="kfpd's YAML settings file.")
    ] = None,
) -> None:
    """Import runs, tasks, artifacts and lineage from ML Metadata into kfpd's database.

    Safe to re-run: what is already imported is skipped, and an interrupted import resumes.
    The server refuses to start while an import is incomplete.
    """
    from kfpd.db.engine import Database
    from kfpd.db.migrate import upgrade
    from kfpd.services.mlmd_import import ImportOptions
    from kfpd.services.mlmd_import import import_mlmd as run_import
    from kfpd.services.mlmd_validate import validate_import

    try:
        settings = Settings.load(config, db_url=db_url, data_dir=data_dir)
    except (ConfigFileError, ValidationError) as exc:
        typer.echo(f"kfpd: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    console = Console(stderr=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    database = Database(settings.database_url)
    options = ImportOptions(mlmd_db, kfp_db, namespace, dry_run, batch_executions)
    try:
        columns = (
            TextColumn("{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            report = run_import(database, options, _RichProgress(bar))
        title = "would import (dry run)" if dry_run else "imported"
        console.print(
            _table(f"{title} in {report.seconds:.1f}s", dict(report.as_dict()["imported"]))
        )
        console.print(_table("skipped (and why)", dict(report.as_dict()["skipped"])))
        if validate and not dry_run:
            _print_validation(console, validate_import(database, mlmd_db, kfp_db, namespace))
    finally:
        database.dispose()
