"""Side virtualenv holding ML Metadata 1.17.1 for the kfpd-vs-MLMD benchmark.

``ml-metadata==1.17.1`` pins ``protobuf<5`` and only ships CPython 3.9-3.11
wheels (manylinux x86_64), so it cannot live in kfpd's own environment.
:func:`ensure_mlmd_python` builds (once) a separate venv for it and returns that
venv's interpreter, which then runs ``bench/mlmd_workload.py``.

Stdlib only, so it can be imported from any environment.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

MLMD_VERSION = "1.17.1"
REQUIREMENTS = (f"ml-metadata=={MLMD_VERSION}", "protobuf<5")
# CPython minor versions for which ml-metadata 1.17.1 publishes wheels.
SUPPORTED = ((3, 11), (3, 10), (3, 9))
DEFAULT_VENV = Path.home() / ".cache" / "kfpd-bench" / "mlmd-venv"

_PROBE = f"import ml_metadata, sys; sys.exit(ml_metadata.__version__ != {MLMD_VERSION!r})"
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"


def _run_ok(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def _minor(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", _VERSION], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    major, minor = out.stdout.strip().split(".")
    return int(major), int(minor)


def find_base_python() -> str:
    """Return an interpreter that ml-metadata 1.17.1 has wheels for.

    Order: ``$KFPD_MLMD_BASE_PYTHON``, the running interpreter, ``python3.{11,10,9}``
    on PATH, then pyenv installs under ``$PYENV_ROOT`` (default ``~/.pyenv``).
    """
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [os.environ.get("KFPD_MLMD_BASE_PYTHON", ""), sys.executable]
    candidates += [shutil.which(f"python{a}.{b}") or "" for a, b in SUPPORTED]
    for a, b in SUPPORTED:
        candidates += sorted(glob.glob(str(pyenv / f"{a}.{b}.*" / "bin" / "python3")), reverse=True)
    for cand in filter(None, candidates):
        if _minor(cand) in SUPPORTED:
            return cand
    raise RuntimeError(
        f"ml-metadata {MLMD_VERSION} needs CPython 3.9-3.11; none found "
        "(set KFPD_MLMD_BASE_PYTHON to such an interpreter)"
    )


def ensure_mlmd_python(venv_dir: Path | None = None) -> Path:
    """Create (once) a venv with ml-metadata 1.17.1 + protobuf<5; return its python.

    ``venv_dir`` defaults to ``$KFPD_MLMD_VENV`` or ``~/.cache/kfpd-bench/mlmd-venv``.
    An existing venv is reused as-is when ``import ml_metadata`` (1.17.1) works in it.
    """
    if venv_dir is None:
        venv_dir = Path(os.environ.get("KFPD_MLMD_VENV") or DEFAULT_VENV)
    python = venv_dir / "bin" / "python"
    if python.exists() and _run_ok([str(python), "-c", _PROBE]):
        return python
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([find_base_python(), "-m", "venv", "--clear", str(venv_dir)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    if not _run_ok([str(python), "-c", _PROBE]):
        raise RuntimeError(f"ml-metadata {MLMD_VERSION} not importable in {venv_dir}")
    return python


if __name__ == "__main__":
    print(ensure_mlmd_python())
