"""``kfpd tokens`` and ``kfpd bindings``: API tokens and role bindings, straight in the database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.domain.errors import KfpdError
from kfpd.domain.timeutil import to_rfc3339
from kfpd.services import auth_store

tokens_app = typer.Typer(help="API tokens for multi-user mode.", no_args_is_help=True)
bindings_app = typer.Typer(help="Role bindings stored in the database.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option(help="kfpd's data dir (~/.kfpd).")]
DbUrl = Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in data dir).")]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` (or a plain number of seconds) -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise typer.BadParameter(f"expected a duration such as 90d, 12h or 30m, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _database(data_dir: Path | None, db_url: str | None) -> Database:
    given = {"data_dir": data_dir, "db_url": db_url}
    settings = Settings.load(None, **{k: v for k, v in given.items() if v is not None})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    return Database(settings.database_url)


def _when(us: int) -> str:
    return to_rfc3339(us) or "-" if us else "-"


@tokens_app.command("create")
def create_token(
    user: Annotated[str, typer.Option(help="Who the token signs in as.")],
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime such as 90d, 12h (default: no expiry).")
    ] = None,
    description: Annotated[str, typer.Option(help="What the token is for.")] = "",
    data_dir: DataDir = None,
    db_url: DbUrl = None,
) -> None:
    """Create an API token; it is printed once, on the last line, and never stored in clear."""
    seconds = parse_duration(expires_in) if expires_in else None
    db = _database(data_dir, db_url)
    try:
        with db.write_session() as s:
            made = auth_store.create_token(s, user, expires_in_s=seconds, description=description)
    finally:
        db.dispose()
    typer.echo(f"token {made.id} for {made.user}, expires {_when(made.expires_at)}", err=True)
    typer.echo(made.token)


@tokens_app.command("list")
def list_tokens(data_dir: DataDir = None, db_url: DbUrl = None) -> None:
    """List tokens (ids, owners, expiry, last use; never the tokens)."""
    db = _database(data_dir, db_url)
    try:
        with db.read_session() as s:
            rows = auth_store.list_tokens(s)
    finally:
        db.dispose()
    typer.echo("ID\tUSER\tCREATED\tEXPIRES\tLAST USED\tREVOKED\tDESCRIPTION")
    for r in rows:
        typer.echo(
            f"{r.id}\t{r.user}\t{_when(r.created_at)}\t{_when(r.expires_at)}\t"
            f"{_when(r.last_used_at)}\t{_when(r.revoked_at)}\t{r.description}"
        )


@tokens_app.command("revoke")
def revoke_token(token_id: str, data_dir: DataDir = None, db_url: DbUrl = None) -> None:
    """Revoke a token by its id: it stops working at once."""
    db = _database(data_dir, db_url)
    try:
        with db.write_session() as s:
            auth_store.revoke_token(s, token_id)
    except KfpdError as exc:
        typer.echo(f"kfpd: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    typer.echo(f"token {token_id} revoked")


@bindings_app.command("add")
def add_binding(
    role: Annotated[str, typer.Option(help="viewer | editor | admin")],
    namespace: Annotated[str, typer.Option(help='The namespace ("*": every one).')],
    user: Annotated[str | None, typer.Option(help="A user...")] = None,
    group: Annotated[str | None, typer.Option(help="...or a group.")] = None,
    data_dir: DataDir = None,
    db_url: DbUrl = None,
) -> None:
    """Give a user or a group a role in a namespace."""
    db = _database(data_dir, db_url)
    try:
        with db.write_session() as s:
            row = auth_store.add_binding(s, auth_store.parse_binding(role, namespace, user, group))
    except KfpdError as exc:
        typer.echo(f"kfpd: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    typer.echo(row.id)


@bindings_app.command("list")
def list_bindings(data_dir: DataDir = None, db_url: DbUrl = None) -> None:
    """List the bindings stored in the database (the auth config file has the others)."""
    db = _database(data_dir, db_url)
    try:
        with db.read_session() as s:
            rows = auth_store.list_bindings(s)
    finally:
        db.dispose()
    typer.echo("ID\tUSER\tGROUP\tROLE\tNAMESPACE")
    for r in rows:
        typer.echo(f"{r.id}\t{r.user}\t{r.group}\t{r.role}\t{r.namespace}")


@bindings_app.command("remove")
def remove_binding(binding_id: str, data_dir: DataDir = None, db_url: DbUrl = None) -> None:
    """Remove a stored binding by its id."""
    db = _database(data_dir, db_url)
    try:
        with db.write_session() as s:
            auth_store.delete_binding(s, binding_id)
    except KfpdError as exc:
        typer.echo(f"kfpd: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    typer.echo(f"binding {binding_id} removed")
