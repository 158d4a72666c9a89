"""Dialect-specific reading of database errors."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def is_unique_violation(exc: IntegrityError) -> bool:
    """True when the error is a unique-constraint violation, on any supported dialect."""
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # MySQL/MariaDB (sqlstate is the generic 23000)
        return args[0] == 1062  # ER_DUP_ENTRY
    if getattr(orig, "sqlstate", None) is not None:  # PostgreSQL
        return bool(orig.sqlstate == "23505")  # type: ignore[union-attr]
    return "UNIQUE constraint failed" in str(orig)  # SQLite


def is_foreign_key_violation(exc: IntegrityError) -> bool:
    """True when a row names a parent row that does not exist, on any supported dialect."""
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):  # MySQL/MariaDB
        return args[0] in (1216, 1452)  # ER_NO_REFERENCED_ROW(_2)
    if getattr(orig, "sqlstate", None) is not None:  # PostgreSQL
        return bool(orig.sqlstate == "23503")  # type: ignore[union-attr]
    return "FOREIGN KEY constraint failed" in str(orig)  # SQLite
