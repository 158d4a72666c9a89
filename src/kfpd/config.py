"""Server settings, from CLI flags or KFPD_* environment variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    return Path(os.environ.get("KFPD_DATA_DIR") or Path.home() / ".kfpd")


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    db_url: str | None = None  # default: SQLite in data_dir
    host: str = "127.0.0.1"
    port: int = 8888
    max_body_bytes: int = int(os.environ.get("KFPD_MAX_BODY_BYTES", 32 * 1024 * 1024))
    migrate: bool = True  # upgrade the schema to head at start-up
    orchestrate: bool = True  # run pipelines (False: store runs only)
    cache_enabled: bool = os.environ.get("KFPD_CACHE", "1") != "0"  # server-wide task cache
    max_parallel: int = int(os.environ.get("KFPD_MAX_PARALLEL", 0)) or (os.cpu_count() or 1)
    public_url: str | None = None  # how launchers reach this server (default from host/port)

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        env = os.environ.get("KFPD_DB_URL")
        if env:
            return env
        return f"sqlite:///{self.data_dir / 'kfpd.sqlite'}"

    @property
    def secrets_dir(self) -> Path:
        """Local stand-ins for Kubernetes secrets used by secretAsEnv: <name>.json files."""
        return Path(os.environ.get("KFPD_SECRETS_DIR") or self.data_dir / "secrets")

    @property
    def config_maps_dir(self) -> Path:
        return Path(os.environ.get("KFPD_CONFIG_MAPS_DIR") or self.data_dir / "configmaps")

    @property
    def server_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def log_root(self) -> Path:
        """Where task logs are kept: <log_root>/<run_id>/<task_id>.log."""
        return self.data_dir / "logs"

    def run_token_secret(self) -> bytes:
        """The key run tokens are signed with, created once and kept in the data directory."""
        path = self.data_dir / "run-token.key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_bytes()
