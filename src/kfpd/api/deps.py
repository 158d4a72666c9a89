"""Request dependencies and query-parameter parsing (empty values mean unset)."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Query, Request

from kfpd.db.engine import Database
from kfpd.db.listing import ListRequest
from kfpd.domain.enums import ViewMode
from kfpd.domain.errors import InvalidArgument


# Dependencies that do no I/O are async: FastAPI runs a sync dependency in the threadpool,
# one more thread hop per request.
def database_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_database(request: Request) -> Database:
    return database_of(request)


Db = Annotated[Database, Depends(get_database)]


class RunEvents(Protocol):
    """What routes tell the engine after their transaction committed."""

    def run_created(self, run_id: str) -> None: ...

    def run_retried(self, run_id: str) -> None: ...

    def run_terminated(self, run_id: str) -> None: ...

    def task_finished(self, run_id: str, task_id: str) -> None: ...


class _NoEngine:
    """A server started without orchestration: runs are only stored."""

    def run_created(self, run_id: str) -> None:
        pass

    def run_retried(self, run_id: str) -> None:
        pass

    def run_terminated(self, run_id: str) -> None:
        pass

    def task_finished(self, run_id: str, task_id: str) -> None:
        pass


def run_events_of(request: Request) -> RunEvents:
    engine: RunEvents | None = getattr(request.app.state, "engine", None)
    return engine if engine is not None else _NoEngine()


async def get_run_events(request: Request) -> RunEvents:
    return run_events_of(request)


Events = Annotated[RunEvents, Depends(get_run_events)]


def opt_str(value: str | None) -> str | None:
    return value if value not in (None, "") else None


def opt_int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    assert value is not None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidArgument(f"{name} must be an integer, got {value!r}") from exc


def opt_bool(value: str | None, name: str) -> bool:
    if value in (None, ""):
        return False
    assert value is not None
    if value.lower() in {"true", "1"}:
        return True
    if value.lower() in {"false", "0"}:
        return False
    raise InvalidArgument(f"{name} must be true or false, got {value!r}")


def parse_view(value: str | None) -> ViewMode:
    if value in (None, ""):
        return ViewMode.DEFAULT
    try:
        return ViewMode(ViewMode.parse(value))
    except ValueError as exc:
        raise InvalidArgument(f"view must be DEFAULT or FULL, got {value!r}") from exc


def parse_list_request(
    page_token: str | None, page_size: str | None, sort_by: str | None, filter: str | None
) -> ListRequest:
    return ListRequest(
        page_size=opt_int(page_size, "page_size"),
        page_token=opt_str(page_token),
        sort_by=opt_str(sort_by),
        filter=opt_str(filter),
    )


async def list_request(
    page_token: Annotated[str | None, Query()] = None,
    page_size: Annotated[str | None, Query()] = None,
    sort_by: Annotated[str | None, Query()] = None,
    filter: Annotated[str | None, Query()] = None,
) -> ListRequest:
    return parse_list_request(page_token, page_size, sort_by, filter)


Listing = Annotated[ListRequest, Depends(list_request)]
