"""``kfpd gc``: apply a retention policy now, or report what it would remove (--dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kfpd.cli.settings import settings_or_exit
from kfpd.config import Settings
from kfpd.domain.timeutil import now_us
from kfpd.services import retention


def _print(report: retention.GcReport, console: Console) -> None:
    verb = "would remove" if report.dry_run else "removed"
    table = Table(title=f"kfpd gc: {verb}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("runs", str(report.runs))
    table.add_row("tasks", str(report.tasks))
    table.add_row("task logs (one directory per run)", str(report.runs))
    table.add_row("artifacts no kept run links", str(report.artifacts))
    table.add_row("artifacts kept (a kept run links them too)", str(report.artifacts_kept_shared))
    if not report.dry_run:
        table.add_row("artifact objects deleted", str(report.artifact_objects))
    console.print(table)
    for namespace, count in sorted(report.runs_by_namespace.items()):
        console.print(f"  namespace {namespace or '(none)'!s}: {count} runs")
    for error in report.artifact_object_errors[:20]:
        console.print(f"  [yellow]not deleted[/yellow] {error}")


def gc(
    config: Annotated[
        Path | None, typer.Option("--config", help="kfpd config file (its retention section).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="The server's data dir.")] = None,
    db_url: Annotated[str | None, typer.Option(help="The server's database URL.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; change nothing.")
    ] = False,
    max_age_days: Annotated[
        float | None, typer.Option(help="Remove finished runs older than this many days.")
    ] = None,
    keep_last: Annotated[
        int | None, typer.Option(help="Always keep the newest N runs of each experiment.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Apply the policy to this namespace only.")
    ] = None,
    delete_artifacts: Annotated[
        bool | None,
        typer.Option(help="Also delete artifact objects that no kept run links."),
    ] = None,
) -> None:
    """Remove finished runs a retention policy expires: rows, logs, and (asked) artifacts.

    The policy comes from the config file's `retention` section; flags override it. Artifacts
    are lineage-aware: one that a kept run produced or used is never deleted.
    """
    from kfpd.db.engine import Database

    settings: Settings = settings_or_exit(config, data_dir=data_dir, db_url=db_url)
    policy = settings.retention.model_copy(
        update={
            k: v
            for k, v in {
                "max_age_days": max_age_days,
                "keep_last_per_experiment": keep_last,
                "delete_artifacts": delete_artifacts,
            }.items()
            if v is not None
        }
    )
    policies = retention.policies_of(policy)
    if namespace is not None:
        policies = retention.PolicySet(
            retention.RetentionPolicy(), {namespace: policies.for_namespace(namespace)}
        )
    if not policy.enabled and not any(p.active for p in policies.namespaces.values()):
        typer.echo("kfpd gc: no retention policy: give --max-age-days or configure `retention`")
        raise typer.Exit(2)
    database = Database(settings.database_url)
    try:
        if dry_run:
            with database.read_session() as session:
                report = retention.plan(session, policies, now_us())
        else:
            report = retention.collect_with_settings(
                database.write_session,
                policies,
                now_us(),
                log_root=settings.log_root,
                artifact_root=settings.artifact_root,
                delete_artifacts=policy.delete_artifacts,
                remote_locate=_remote_locate(settings) if policy.delete_artifacts else None,
            )
    finally:
        database.dispose()
    _print(report, Console())


def _remote_locate(settings: Settings) -> retention.RemoteLocate:
    """Object stores as the server reaches them (its --launcher-config and secrets)."""
    from kfpd.services.storage import Storage
    from kfpd.storage.launcher_config import StorageConfigError

    try:
        storage = Storage.for_server(
            settings.launcher_config, settings.artifact_root, settings.secrets_dir
        )
    except StorageConfigError as exc:
        typer.echo(f"kfpd gc: {exc}", err=True)
        raise typer.Exit(2) from None
    return storage.locate
