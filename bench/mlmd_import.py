"""``kfpd import-mlmd`` on a 10,000-execution MLMD store, beside MLMD reading it back.

    .venv/bin/python bench/mlmd_import.py [--executions 10000] [--db-url URL] [--reuse]

Builds (once; ``--reuse`` keeps it) a KFP-shaped ML Metadata 1.17.1 store with
``bench/mlmd_store.py generate`` in the side venv of ``bench/mlmd_env.py``, then in the same
run: (1) MLMD's own API reads the whole history back (``bench/mlmd_store.py read``: every
run context, its executions, events and artifacts), (2) kfpd imports it into a fresh database
(SQLite in a temp dir, or ``--db-url``, emptied first) and validates it. Target: the import
takes < 60 s. Prints both times and the import's counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlmd_env import DEFAULT_VENV, ensure_mlmd_python

from kfpd.db.engine import Database
from kfpd.db.migrate import downgrade, upgrade
from kfpd.services.mlmd_import import ImportOptions, import_mlmd
from kfpd.services.mlmd_validate import validate_import

HERE = Path(__file__).resolve().parent


def _store(python: Path, executions: int, reuse: bool) -> Path:
    path = DEFAULT_VENV.parent / f"mlmd-import-{executions}.sqlite"
    if reuse and path.exists():
        return path
    # MLMD commits every call; on tmpfs those commits wait for no disk (minutes saved).
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else path.parent
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        built = Path(tmp) / path.name
        subprocess.run(
            [str(python), str(HERE / "mlmd_store.py"), "generate", "--db", str(built),
             "--executions", str(executions)],
            check=True,
        )  # fmt: skip
        shutil.move(built, path)
    return path


def _fresh(url: str | None, tmp: Path) -> str:
    if url is None:
        return f"sqlite:///{tmp / 'kfpd.sqlite'}"
    upgrade(url)
    downgrade(url, "base")  # an empty database, whatever it held
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executions", type=int, default=10_000)
    ap.add_argument("--db-url", help="kfpd's database (default: SQLite in a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="keep an existing generated store")
    args = ap.parse_args()

    python = ensure_mlmd_python()
    store = _store(python, args.executions, args.reuse)
    read = subprocess.run(
        [str(python), str(HERE / "mlmd_store.py"), "read", "--db", str(store)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    mlmd = json.loads(read.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as tmp:
        url = _fresh(args.db_url, Path(tmp))
        upgrade(url)
        database = Database(url)
        started = time.perf_counter()
        report = import_mlmd(database, ImportOptions(f"sqlite:///{store}"))
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        differences = validate_import(database, f"sqlite:///{store}").differences
        validate_s = time.perf_counter() - started
        database.dispose()
    dialect = url.split(":", 1)[0]
    print(
        f"MLMD 1.17.1 reads it back:   {mlmd['seconds']:6.2f} s  "
        f"({mlmd['runs']} runs, {mlmd['executions']} executions, {mlmd['events']} events, "
        f"{mlmd['artifacts']} artifacts)"
    )
    print(
        f"kfpd import-mlmd ({dialect}): {seconds:6.2f} s  {dict(report.imported)}  "
        f"target < 60 s: {'met' if seconds < 60 else 'MISSED'}"
    )
    print(f"kfpd validation:             {validate_s:6.2f} s  differences: {len(differences)}")


if __name__ == "__main__":
    main()
