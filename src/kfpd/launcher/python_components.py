"""Lightweight Python components: recognising them, and running them without their prelude.

A lightweight component's command is ``sh -c <prelude> sh -ec <program> <source>``: the
prelude pip-installs ``kfp==<compile version> --no-deps`` (and ``packages_to_install`` on a
line before it), then the program writes ``source`` to a file and runs
``python3 -m kfp.dsl.executor_main --component_module_path <file> <args>``.

When the installed kfp has the major version the component was compiled with, the kfp line
is skipped. Without other packages the component runs in a fork of the launcher, kfp already
imported (``_KFP_RUNTIME=true``): no pip, no new interpreter. With ``packages_to_install`` it
runs in a virtualenv made once per requirement set (under a file lock, so concurrent tasks
share it), which also sees the installed kfp through a ``.pth`` file.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXECUTOR_MODULE = "kfp.dsl.executor_main"

_PROGRAM = re.compile(
    r'^program_path=\$\(mktemp -d\) printf "%s" "\$0" > "\$program_path/ephemeral_component\.py" '
    r"(?:_KFP_RUNTIME=true )?python3 -m (?P<module>[\w.]+) --component_module_path "
    r'"\$program_path/ephemeral_component\.py" "\$@"$'
)
# Prelude lines that do nothing a host run needs (pip bootstrap, kfp's use_venv block).
_PRELUDE_NOISE = {
    "",
    'if ! [ -x "$(command -v pip)" ]; then',
    "python3 -m ensurepip || python3 -m ensurepip --user || apt-get install python3-pip",
    "fi",
    '"$0" "$@"',
    "export PIP_DISABLE_PIP_VERSION_CHECK=1",
    "tmp=$(mktemp -d)",
    'python3 -m venv "$tmp/venv" --system-site-packages',
    '. "$tmp/venv/bin/activate"',
}
_PIP_VALUE_OPTIONS = {
    "--index-url",
    "-i",
    "--extra-index-url",
    "--trusted-host",
    "--find-links",
    "-f",
}
_PIP_DROPPED_FLAGS = {"--quiet", "-q", "--no-warn-script-location", "--no-deps", "--user"}
_KFP_REQUIREMENT = re.compile(
    r"^kfp\s*(?:\[[^\]]*\])?\s*(?:(?P<op>==|>=|~=|<=|!=|<|>)\s*(?P<ver>[^;\s]+))?\s*(?:;.*)?$"
)


@dataclass(frozen=True)
class PipInstall:
    """One ``pip install`` line: its index options and requirements."""

    options: tuple[str, ...]
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class PythonComponent:
    source: str
    executor_module: str
    executor_args: list[str]  # the arguments for executor_main (still with placeholders)
    installs: tuple[PipInstall, ...]


def parse_python_component(command: list[str], args: list[str]) -> PythonComponent | None:
    """The lightweight component a container spec runs, or None if it is something else."""
    installs: tuple[PipInstall, ...] = ()
    rest = command
    if rest[:2] == ["sh", "-c"] and len(rest) >= 7 and rest[3:5] == ["sh", "-ec"]:
        parsed = _parse_prelude(rest[2])
        if parsed is None:
            return None
        installs, rest = parsed, rest[3:]
    if rest[:2] != ["sh", "-ec"] or len(rest) < 4:
        return None
    program = _PROGRAM.match(" ".join(rest[2].split()))
    if program is None:
        return None
    return PythonComponent(
        source=rest[3],
        executor_module=program.group("module"),
        executor_args=[*rest[4:], *args],
        installs=installs,
    )


def _parse_prelude(prelude: str) -> tuple[PipInstall, ...] | None:
    installs = []
    for segment in re.split(r"&&|\n", prelude):
        text = " ".join(segment.split())
        if text in _PRELUDE_NOISE:
            continue
        try:
            tokens = shlex.split(text)
        except ValueError:
            return None
        while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
            tokens.pop(0)  # PIP_DISABLE_PIP_VERSION_CHECK=1
        if tokens[:4] != ["python3", "-m", "pip", "install"]:
            return None  # the prelude does something we do not understand: run it as written
        installs.append(_parse_pip(tokens[4:]))
    return tuple(installs)


def _parse_pip(tokens: list[str]) -> PipInstall:
    options: list[str] = []
    requirements: list[str] = []
    items = iter(tokens)
    for token in items:
        if token in _PIP_VALUE_OPTIONS:
            options += [token, next(items, "")]
        elif token in _PIP_DROPPED_FLAGS:
            continue
        elif token.startswith("-"):
            options.append(token)
        else:
            requirements.append(token)
    return PipInstall(tuple(options), tuple(requirements))


def installed_kfp_version() -> str | None:
    try:
        return importlib.metadata.version("kfp")
    except importlib.metadata.PackageNotFoundError:
        return None


def _serves(requirement: str, installed: str | None) -> bool:
    """Whether the installed kfp can stand in for a kfp requirement (same major version)."""
    match = _KFP_REQUIREMENT.match(requirement)
    if installed is None or match is None:
        return False
    if match.group("op") not in ("==", "~="):
        return True
    major = re.match(r"\d+", match.group("ver"))
    return major is not None and major.group(0) == installed.split(".")[0]


def _is_kfp(requirement: str) -> bool:
    return _KFP_REQUIREMENT.match(requirement) is not None


def venv_installs(component: PythonComponent) -> tuple[PipInstall, ...]:
    """What must be installed beyond the host's kfp; empty means the fast path can run it."""
    installed = installed_kfp_version()
    if component.executor_module != EXECUTOR_MODULE:
        installed = None  # an old kfp layout: let the component's own kfp run it
    needed = []
    for install in component.installs:
        kfp_reqs = [r for r in install.requirements if _is_kfp(r)]
        if kfp_reqs and all(_serves(r, installed) for r in kfp_reqs):
            # Drop kfp, and the typing-extensions pin kfp adds for Python < 3.9.
            rest = tuple(
                r
                for r in install.requirements
                if not _is_kfp(r) and 'python_version<"3.9"' not in r.replace(" ", "")
            )
            if not rest:
                continue
            install = PipInstall(install.options, rest)
        needed.append(install)
    return tuple(needed)


def executor_main_request(
    module_path: str, args: list[str], env: dict[str, str], cwd: str
) -> dict[str, Any]:
    return {"module_path": module_path, "args": args, "env": env, "cwd": cwd}


def run_executor_main(request: dict[str, Any]) -> int:
    """In a forked child: run kfp's executor_main as ``python -m`` would."""
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["_KFP_RUNTIME"] = "true"
    sys.argv = [EXECUTOR_MODULE, "--component_module_path", request["module_path"]]
    sys.argv += request["args"]
    from kfp.dsl import executor_main

    executor_main.executor_main()
    return 0


# ---------------------------------------------------------------------------- virtualenvs


def default_venv_root() -> Path:
    configured = os.environ.get("KFPD_VENV_ROOT")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kfpd" / "venvs"


def requirement_set_key(installs: tuple[PipInstall, ...]) -> str:
    """The cache key of a virtualenv. It names where the host's kfp lives, not only its version:
    the virtualenv imports kfp from there (_link_host_kfp), so a second kfpd installation must
    not reuse a virtualenv linked to the first, which breaks once the first is removed."""
    host_site = _host_kfp_site()
    identity = {
        "python": sys.version.split()[0],
        "host_kfp": installed_kfp_version(),
        "host_kfp_site": str(host_site) if host_site is not None else None,
        "installs": [[list(i.options), sorted(i.requirements)] for i in installs],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


class VenvError(Exception):
    pass


def ensure_venv(
    root: Path,
    installs: tuple[PipInstall, ...],
    *,
    run: Callable[[list[str]], int],
    note: Callable[[str], None],
) -> Path:
    """The python of the virtualenv for this requirement set, creating it on first use.

    ``run`` executes a command with its output going to the task's log and returns its code.
    """
    key = requirement_set_key(installs)
    venv = root / key
    python = venv / "bin" / "python"
    ready = venv / ".kfpd-ready"
    if ready.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{key}.lock").open("w") as lock:
        if not ready.exists():
            note(f"waiting for the lock on virtualenv {venv}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # a build that died half-way
        note(f"creating virtualenv {venv}")
        if run([sys.executable, "-m", "venv", "--without-pip", str(venv)]) != 0:
            raise VenvError(f"could not create the virtualenv {venv}")
        for install in installs:
            argv = [
                sys.executable, "-m", "pip", "--python", str(python), "install",
                "--disable-pip-version-check", "--no-warn-script-location",
                *install.options, *install.requirements,
            ]  # fmt: skip
            note("pip install " + " ".join(shlex.quote(r) for r in install.requirements))
            code = run(argv)
            if code != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise VenvError(
                    f"pip install {' '.join(install.requirements)} failed (exit code {code})"
                )
        _link_host_kfp(python)
        ready.touch()
    return python


def _host_kfp_site() -> Path | None:
    """The site directory the host's kfp package is imported from."""
    spec = importlib.util.find_spec("kfp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def _link_host_kfp(python: Path) -> None:
    """Let the virtualenv import the host's kfp (after its own packages, which win)."""
    host_site = _host_kfp_site()
    if host_site is None:
        return
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "kfpd-host-kfp.pth").write_text(f"{host_site}\n")
