"""Server settings: one typed model, read from a YAML file, ``KFPD_*`` variables and flags.

Precedence, highest first: values passed in (``kfpd server`` flags the user gave), environment
variables (``KFPD_<FIELD>``, e.g. ``KFPD_PORT=9000``), the config file (``--config FILE`` or
``KFPD_CONFIG``; keys are the field names), then the defaults below. Unknown keys in the file
are an error, so a typo does not silently fall back to a default.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

CONFIG_ENV = "KFPD_CONFIG"


def default_data_dir() -> Path:
    return Path(os.environ.get("KFPD_DATA_DIR") or Path.home() / ".kfpd")


class ConfigFileError(ValueError):
    """The configuration file is missing, not YAML, or not a mapping."""


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping of setting: value")
    return loaded


class NamespaceRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age_days: float | None = Field(default=None, gt=0)
    keep_last_per_experiment: int | None = Field(default=None, ge=0)


class RetentionSettings(NamespaceRetention):
    """Retention of finished runs (off unless ``max_age_days`` is set here or per namespace)."""

    namespaces: dict[str, NamespaceRetention] = Field(default_factory=dict)
    delete_artifacts: bool = Field(
        default=False, description="Also delete artifact objects no kept run links."
    )
    interval_minutes: float = Field(default=60, gt=0, description="How often the job runs.")

    @property
    def enabled(self) -> bool:
        return self.max_age_days is not None or any(
            n.max_age_days is not None for n in self.namespaces.values()
        )


class Settings(BaseSettings):
    """Everything ``kfpd server`` can be told. Field names are the config-file keys."""

    model_config = SettingsConfigDict(
        env_prefix="KFPD_",
        extra="forbid",
        populate_by_name=True,
        validate_assignment=True,
        env_nested_delimiter="__",  # KFPD_RETENTION__MAX_AGE_DAYS=30
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where kfpd keeps its database, logs and artifacts.",
    )
    db_url: str | None = Field(
        default=None, description="SQLAlchemy URL (default: SQLite in the data dir)."
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8888, ge=0, le=65535, description="Port the server listens on.")
    public_url: str | None = Field(
        default=None, description="How launchers reach this server (default from host/port)."
    )
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="Largest request body accepted."
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry spans, metrics and logs for every request, "
        "to the providers the process configures (off: ~2 % of a task's write cost).",
    )
    migrate: bool = Field(default=True, description="Upgrade the schema to head at start-up.")
    orchestrate: bool = Field(default=True, description="Run pipelines (false: store runs only).")
    cache_enabled: bool = Field(
        default=True,
        validation_alias=AliasChoices("cache_enabled", "KFPD_CACHE", "KFPD_CACHE_ENABLED"),
        description="Reuse results of cached tasks (server-wide switch).",
    )
    max_parallel: int = Field(
        default=0, ge=0, description="Tasks the local executor runs at once (0: CPU count)."
    )
    on_stop: Literal["leave", "drain", "cancel"] = Field(
        default="leave",
        description="What a graceful stop does with running tasks: leave them running (the "
        "next server adopts them), drain (wait for them, up to drain_timeout, then leave the "
        "rest) or cancel (kill them; their tasks fail).",
    )
    task_user: str = Field(
        default="",
        description="Run local tasks as this unprivileged user (the server must run as root), "
        "so they cannot read the run-token key or the database. Empty: the server's user.",
    )
    task_python: str = Field(
        default="",
        description="The Python interpreter task launchers run with (default: the server's); "
        "with task_user it must be one that user can run, with kfpd importable.",
    )
    drain_timeout: float = Field(
        default=600.0, ge=0, description="Seconds a drain waits for running tasks (on_stop=drain)."
    )
    step_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds one orchestration step may take; a longer one fails its run.",
    )
    secrets_dir: Path | None = Field(
        default=None,
        description="Local Kubernetes secrets: <name>.json files (default data_dir/secrets).",
    )
    config_maps_dir: Path | None = Field(
        default=None, description="Local config maps (<name>.json; default data_dir/configmaps)."
    )
    launcher_config: Path | None = Field(
        default=None,
        description="Object storage: the data of upstream's kfp-launcher ConfigMap as YAML "
        "(defaultPipelineRoot, providers); see docs/object-storage.md.",
    )
    executor: Literal["local", "ray", "kubernetes"] = Field(
        default="local", description="What runs tasks: local processes, a Ray cluster, or pods."
    )
    ray_address: str = Field(default="", description="ray: the cluster's HOST:PORT (its GCS).")
    k8s_namespace: str = Field(
        default="", description="kubernetes: namespace for pods (default: the run's, else default)."
    )
    kubeconfig: str = Field(
        default="", description="kubernetes: kubeconfig file (empty: in-cluster credentials)."
    )
    launcher_image: str = Field(
        default="", description="kubernetes: image holding the launcher bundle (init container)."
    )
    pod_pending_timeout_s: float = Field(
        default=600.0, gt=0, description="kubernetes: a pod not running after this fails its task."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Server log level."
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="Retention of finished runs: age, keep-last per experiment, per namespace.",
    )
    log_format: Literal["json", "console"] = Field(
        default="console",
        description="json: one JSON object per line (for log shippers); console: for people.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names clients reach kfpd by, besides IP addresses, loopback names, "
        "the bind address and the public URL's host (DNS-rebinding protection; "
        "'.example.com' allows subdomains, '*' turns the check off). Env: comma-separated.",
    )
    run_token_ttl: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="Seconds a launcher's run token is good for (every launch gets a fresh one).",
    )
    auth_config: Path | None = Field(
        default=None,
        description="Multi-user mode: YAML with authentication providers and role bindings "
        "(docs/multi-user.md). Without it kfpd is single-user.",
    )
    task_log_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Cap on one task's stored log: its first and last halves are kept, with a "
        "line saying how much was dropped between them (0: no cap).",
    )
    allow_remote_unauthenticated: bool = Field(
        default=False,
        description="Confirm listening on a non-loopback address without authentication "
        "(anyone who can reach it can run commands as this user).",
    )
    scheduler: bool = Field(
        default=True,
        description="Fire recurring runs (needs orchestrate; false: another server does).",
    )
    scheduler_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the scheduler looks at the schedules when no slot is due sooner.",
    )

    @field_validator("host", mode="before")
    @classmethod
    def _bind_address_from_url(cls, value: Any) -> Any:
        """KFPD_HOST is also the CLI's server URL (``http://h:port``): the server binds its
        host name, so one variable serves a shell that runs both."""
        if isinstance(value, str) and "://" in value:
            return urlsplit(value).hostname or value
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
        if self.max_parallel == 0:
            object.__setattr__(self, "max_parallel", os.cpu_count() or 1)
        if self.secrets_dir is None:
            object.__setattr__(self, "secrets_dir", self.data_dir / "secrets")
        if self.config_maps_dir is None:
            object.__setattr__(self, "config_maps_dir", self.data_dir / "configmaps")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del settings_cls, dotenv_settings, file_secret_settings  # no .env or secrets-dir magic
        return (init_settings, env_settings)

    @classmethod
    def env_names(cls, field: str) -> list[str]:
        """The environment variables that set ``field``."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return [c for c in alias.choices if isinstance(c, str) and c.startswith("KFPD_")]
        return [f"KFPD_{field.upper()}"]

    @classmethod
    def load(cls, config_file: Path | None = None, **given: Any) -> Settings:
        """Settings from ``given`` (flags; None means "not given"), then ``KFPD_*`` variables,
        then ``config_file`` (default: the file named by ``KFPD_CONFIG``, if any)."""
        explicit = {key: value for key, value in given.items() if value is not None}
        if config_file is None and os.environ.get(CONFIG_ENV):
            config_file = Path(os.environ[CONFIG_ENV])
        if config_file is None:
            return cls(**explicit)
        from_env = {f for f in cls.model_fields if any(n in os.environ for n in cls.env_names(f))}
        from_file = {k: v for k, v in read_config_file(config_file).items() if k not in from_env}
        return cls(**(from_file | explicit))

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'kfpd.sqlite'}"

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

    def masked(self) -> dict[str, Any]:
        """The effective settings for display: passwords in URLs and secret values masked."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump(mode="json").items():
            shown[name] = value
        if self.db_url:
            shown["db_url"] = make_url(self.db_url).render_as_string(hide_password=True)
        for name in type(self).model_fields:
            if isinstance(getattr(self, name), SecretStr):
                shown[name] = "**********"
        shown["database_url (effective)"] = make_url(self.database_url).render_as_string(
            hide_password=True
        )
        return shown

    def prepare_data_dir(self) -> None:
        """Create the data directory private to this user (0700; an existing one is
        tightened): the database, logs, artifacts and the token key live under it."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            if self.data_dir.stat().st_mode & 0o077:
                self.data_dir.chmod(0o700)
        except PermissionError:
            pass  # not ours (e.g. a shared mount prepared by an operator): leave it

    def run_token_secret(self) -> bytes:
        """The key run tokens are signed with, created once and kept in the data directory
        (0600). Tasks run as the same user can still read it: see docs/security.md."""
        path = self.data_dir / "run-token.key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        self.prepare_data_dir()
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
