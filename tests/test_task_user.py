"""``--task-user``: the local executor runs task processes as an unprivileged user, so a task
cannot read the run-token key (and mint tokens for other runs). Needs root, to switch user."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kfpd.executors.local import LocalExecutor, TaskUserError
from tests.test_e2e_local import _client, _full, _outputs, _submit

pytestmark = [
    pytest.mark.needs_orchestrator,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root"),
]


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A directory the task user can enter (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="kfpd-task-user-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _python_for_nobody(base: Path) -> Path:
    """An interpreter nobody can run that imports this checkout's packages: the test venv's
    base interpreter may live under a private home (pyenv in /root)."""
    for candidate in ("/usr/bin/python3.11", "/usr/local/bin/python3.11"):
        if Path(candidate).exists():
            break
    else:
        pytest.fail("no system python3.11 the task user can run")
    venv = base / "task-venv"
    subprocess.run([candidate, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = sysconfig.get_paths()["purelib"]
    pth = venv / "lib" / "python3.11" / "site-packages" / "kfpd-host.pth"
    pth.write_text(f"import site; site.addsitedir({site!r})\n")
    for path in [venv, *venv.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o005 if path.is_dir() else path.stat().st_mode | 0o004)
    return venv / "bin" / "python"


def test_a_task_run_as_the_task_user_cannot_read_the_run_token_key(
    orchestrated_server: Any, open_base: Path, tmp_path: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    open_data_dir = open_base / "data"
    python = _python_for_nobody(open_base)
    url = orchestrated_server(data_dir=open_data_dir, task_user="nobody", task_python=str(python))
    key = open_data_dir / "run-token.key"
    run_id = _submit(url, tmp_path, "task_user:read_the_key", key_path=str(key))
    finished = _client(url).wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1)
    task = next(t for t in _full(url, run_id)["tasks"] if t["name"] == "read-key")
    assert finished.state == "SUCCEEDED", task["status_metadata"]
    assert _outputs(task) == {"Output": "EACCES"}
    # It ran as nobody (its artifact says so) and its files are nobody's.
    dataset = next(
        a
        for a in httpx.get(f"{url}/apis/v2beta1/artifacts").json()["artifacts"]
        if a["name"] == "data"
    )
    written = Path(dataset["uri"].removeprefix("file://"))
    assert written.read_text() == f"uid {nobody.pw_uid}"
    assert written.stat().st_uid == nobody.pw_uid
    # The key and the data directory stay the server's: 0600, and 0711 (enter, not list).
    assert key.stat().st_uid == os.geteuid() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(open_data_dir.stat().st_mode) == 0o711


def test_the_default_runs_tasks_as_the_server_user(tmp_path: Path) -> None:
    executor = LocalExecutor(max_parallel=1, work_root=tmp_path / "work", warm=False)
    try:
        assert executor.task_user is None
        assert (tmp_path / "work").stat().st_uid == os.geteuid()
    finally:
        executor.shutdown()


def test_a_task_user_must_exist_not_be_root_and_reach_the_interpreter(tmp_path: Path) -> None:
    for name, message in (("no-such-user-kfpd", "no user named"), ("root", "unprivileged")):
        with pytest.raises(TaskUserError, match=message):
            LocalExecutor(work_root=tmp_path / "work", warm=False, task_user=name)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    python = private / "python"
    python.write_text("")
    python.chmod(0o755)
    with pytest.raises(TaskUserError, match="is private to its owner"):
        LocalExecutor(
            work_root=tmp_path / "work", warm=False, task_user="nobody", python=str(python)
        )
