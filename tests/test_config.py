"""One configuration: file < KFPD_* environment < flags, typed and validated."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kfpd.cli.main import app
from kfpd.config import ConfigFileError, Settings
from kfpd.logs import DemoteChattyAccess, bound, configure_logging


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KFPD_PORT", "KFPD_HOST", "KFPD_CONFIG", "KFPD_DB_URL", "KFPD_CACHE"):
        monkeypatch.delenv(name, raising=False)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write(tmp_path / "kfpd.yaml", "port: 7001\nhost: 127.0.0.2\nmax_parallel: 3\n")
    assert Settings.load(config).port == 7001
    monkeypatch.setenv("KFPD_PORT", "7002")
    loaded = Settings.load(config)
    assert (loaded.port, loaded.host, loaded.max_parallel) == (7002, "127.0.0.2", 3)
    assert Settings.load(config, port=7003, host=None).port == 7003


def test_config_file_from_env_and_legacy_cache_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write(tmp_path / "kfpd.yaml", f"data_dir: {tmp_path / 'd'}\ncache_enabled: true\n")
    monkeypatch.setenv("KFPD_CONFIG", str(config))
    monkeypatch.setenv("KFPD_CACHE", "0")
    loaded = Settings.load()
    assert loaded.data_dir == tmp_path / "d"
    assert loaded.cache_enabled is False  # the variable beats the file
    assert loaded.secrets_dir == tmp_path / "d" / "secrets"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prot: 80\n", "prot"),  # a typo is an error, not a silent default
        ("port: eighty\n", "port"),
        ("port: 70000\n", "port"),
        ("log_format: xml\n", "log_format"),
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Settings.load(_write(tmp_path / "kfpd.yaml", text))


def test_unreadable_or_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        Settings.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigFileError, match="mapping"):
        Settings.load(_write(tmp_path / "list.yaml", "- 1\n- 2\n"))


def test_config_show_masks_the_database_password(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "kfpd.yaml",
        f"db_url: postgresql+psycopg://kfp:s3cr3t-pw@db.example:5432/kfpd\ndata_dir: {tmp_path}\n",
    )
    result = CliRunner().invoke(app, ["config", "show", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "s3cr3t-pw" not in result.output
    assert "kfp:***@db.example" in result.output
    assert "port: 8888" in result.output


def test_server_refuses_a_bad_config_with_one_line(tmp_path: Path) -> None:
    config = _write(tmp_path / "kfpd.yaml", "port: nope\n")
    result = CliRunner().invoke(app, ["server", "--config", str(config)])
    assert result.exit_code == 2
    assert "invalid configuration" in result.output
    assert "Traceback" not in result.output


def test_json_logs_carry_bound_run_and_task(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    try:
        with bound(run_id="run-1", task_id="task-9"):
            logging.getLogger("kfpd.engine.engine").info(
                "task process exited", extra={"returncode": 0}
            )
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["event"] == "task process exited"
        assert (record["run_id"], record["task_id"], record["returncode"]) == ("run-1", "task-9", 0)
        assert record["level"] == "info" and record["logger"] == "kfpd.engine.engine"
    finally:
        logging.getLogger().handlers.clear()


def test_launcher_log_appends_are_access_logged_at_debug() -> None:
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)
    append = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/apis/v2beta1/runs/r/tasks/t/logs", "1.1", 200),
        None,
    )
    other = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/apis/v2beta1/runs", "1.1", 200),
        None,
    )
    demote = DemoteChattyAccess()
    assert demote.filter(append) is False and append.levelname == "DEBUG"
    assert demote.filter(other) is True and other.levelname == "INFO"


def test_kfpd_host_as_the_cli_url_still_gives_the_server_a_bind_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KFPD_HOST", "http://127.0.0.1:9000")
    assert Settings.load().host == "127.0.0.1"


def test_cli_against_a_server_that_is_down_prints_one_line() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    kfpd = Path(sys.executable).with_name("kfpd")
    done = subprocess.run(
        [str(kfpd), "runs", "list", "--host", f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"cannot reach the kfpd server at http://127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
