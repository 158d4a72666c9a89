"""Dialect-specific reading of database errors."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # MySQL/MariaDB: ER_DUP_ENTRY
        return args[0] == 1062
    return "UNIQUE constraint failed" in str(orig)
