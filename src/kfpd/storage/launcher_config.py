"""Upstream's ``kfp-launcher`` ConfigMap data, and which provider settings serve a URI.

The file ``kfpd server --launcher-config FILE`` reads is the ConfigMap's ``data``::

    defaultPipelineRoot: s3://bucket/v2/artifacts
    providers: |            # a YAML string as in the ConfigMap, or a plain mapping
      s3:
        default:
          endpoint: s3.amazonaws.com
          region: us-east-1
          disableSSL: false
          forcePathStyle: true
          maxRetries: 5
          credentials:
            secretRef: {secretName: aws-creds, accessKeyKey: AWS_ACCESS_KEY_ID,
                        secretKeyKey: AWS_SECRET_ACCESS_KEY}
        overrides:          # ordered; the first bucketName + keyPrefix match wins
          - bucketName: team-b
            keyPrefix: shared
            credentials: {fromEnv: true}

``session_info`` decides, without reading any secret, the settings for one URI, in the form
upstream records as ``store_session_info``: ``{"Provider": "s3", "Params": {...}}`` with string
values (endpoint, region, disableSSL, forcePathStyle, maxRetries, fromEnv, secretName,
accessKeyKey, secretKeyKey; for ``gs``: fromEnv, secretName, tokenKey).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

UPSTREAM_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"
MINIO_DEFAULT_ENDPOINT = "minio-service.kubeflow:9000"
MINIO_DEFAULT_SECRET = "mlpipeline-minio-artifact"
MINIO_DEFAULT_ACCESS_KEY_KEY = "accesskey"
MINIO_DEFAULT_SECRET_KEY_KEY = "secretkey"
DEFAULT_MAX_RETRIES = 5
REMOTE_SCHEMES = ("s3", "minio", "gs")


class StorageConfigError(ValueError):
    """The launcher configuration is malformed, or has no settings usable for a URI."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SecretRef(_Model):
    secretName: str
    accessKeyKey: str = ""
    secretKeyKey: str = ""
    tokenKey: str = ""  # gs: the key holding a service-account JSON


class Credentials(_Model):
    fromEnv: bool = False
    secretRef: SecretRef | None = None


class ProviderDefault(_Model):
    endpoint: str = ""
    region: str = ""
    disableSSL: bool | None = None
    forcePathStyle: bool | None = None
    maxRetries: int | None = Field(default=None, ge=0)
    credentials: Credentials | None = None


class ProviderOverride(ProviderDefault):
    bucketName: str
    keyPrefix: str = ""


class ProviderConfig(_Model):
    default: ProviderDefault | None = None
    # Upstream's Go struct tags the list "Overrides"; its YAML decoding ignores case.
    overrides: list[ProviderOverride] | None = Field(
        default=None, validation_alias=AliasChoices("overrides", "Overrides")
    )

    @property
    def empty(self) -> bool:
        return self.default is None and self.overrides is None

    def override_for(self, bucket: str, key: str) -> ProviderOverride | None:
        for override in self.overrides or []:
            if override.bucketName == bucket and prefix_matches(key, override.keyPrefix):
                return override
        return None


class Providers(_Model):
    s3: ProviderConfig | None = None
    minio: ProviderConfig | None = None
    gs: ProviderConfig | None = None


class LauncherConfig(_Model):
    defaultPipelineRoot: str = ""
    providers: Providers = Providers()

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_yaml(cls, value: Any) -> Any:
        # In a ConfigMap every value is a string: providers is YAML inside YAML.
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ValueError(f"providers is not valid YAML: {exc}") from exc
        return value or {}


class SessionInfo(_Model):
    """Upstream's store_session_info: which provider and settings, never secret values."""

    Provider: str
    Params: dict[str, str] = {}


def load_launcher_config(path: Path) -> LauncherConfig:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StorageConfigError(f"cannot read launcher config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise StorageConfigError(f"launcher config {path} is not valid YAML: {exc}") from exc
    return parse_launcher_config(loaded, str(path))


def parse_launcher_config(data: Any, where: str = "launcher config") -> LauncherConfig:
    if data is None:
        return LauncherConfig()
    if isinstance(data, dict) and isinstance(data.get("data"), dict) and "kind" in data:
        data = data["data"]  # a whole ConfigMap manifest: use its data
    if not isinstance(data, dict):
        raise StorageConfigError(f"{where} must be a mapping (the kfp-launcher ConfigMap's data)")
    try:
        return LauncherConfig.model_validate(data)
    except ValidationError as exc:
        raise StorageConfigError(f"{where} is not valid: {exc}") from exc


def prefix_matches(key: str, override_prefix: str) -> bool:
    """Whole path segments: prefix ``a/b`` matches keys ``a/b`` and ``a/b/c``, not ``a/bc``."""
    wanted = override_prefix.strip("/")
    if not wanted:
        return True
    have = key.strip("/")
    return have == wanted or have.startswith(wanted + "/")


def split_uri(uri: str) -> tuple[str, str, str, str]:
    """``scheme://bucket/key?query`` -> (scheme, bucket, key, query)."""
    parts = urlsplit(uri)
    return parts.scheme, parts.netloc, parts.path.lstrip("/"), parts.query


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme in REMOTE_SCHEMES


def pipeline_root(run_root: str | None, config: LauncherConfig, local_root: str) -> str:
    """The run's runtime_config.pipeline_root, else defaultPipelineRoot, else kfpd's local root.

    (Upstream's last resort is ``minio://mlpipeline/v2/artifacts``; kfpd runs without a MinIO,
    so its own artifact directory takes that place.)"""
    return (run_root or "").strip() or config.defaultPipelineRoot.strip() or local_root


def session_info(config: LauncherConfig, uri: str) -> SessionInfo:
    """The provider settings for ``uri``, decided as upstream's launcher does."""
    scheme, bucket, key, query = split_uri(uri)
    if scheme == "gs":
        return _gcs_session(config.providers.gs or ProviderConfig(), bucket, key)
    if scheme == "s3":
        return _s3_session("s3", config.providers.s3 or ProviderConfig(), bucket, key, query)
    if scheme == "minio":
        provider = config.providers.minio or ProviderConfig()
        if provider.empty and not query:
            return _default_minio_session()
        return _s3_session("minio", provider, bucket, key, query)
    raise StorageConfigError(f"no object-store provider for {scheme or 'scheme-less'} URI {uri!r}")


def _default_minio_session() -> SessionInfo:
    return SessionInfo(
        Provider="minio",
        Params={
            "region": "minio",
            "endpoint": MINIO_DEFAULT_ENDPOINT,
            "disableSSL": "true",
            "forcePathStyle": "true",
            "fromEnv": "false",
            "maxRetries": str(DEFAULT_MAX_RETRIES),
            "secretName": MINIO_DEFAULT_SECRET,
            "accessKeyKey": MINIO_DEFAULT_ACCESS_KEY_KEY,
            "secretKeyKey": MINIO_DEFAULT_SECRET_KEY_KEY,
        },
    )


def _bool(value: bool | None, default: bool) -> str:
    return "true" if (default if value is None else value) else "false"


def _credential_params(creds: Credentials, kind: str, keys: tuple[str, ...]) -> dict[str, str]:
    if creds.fromEnv:
        return {"fromEnv": "true"}
    if creds.secretRef is None:
        raise StorageConfigError(f"invalid provider config: {kind} credentials need a secretRef")
    ref = creds.secretRef.model_dump()
    return {"fromEnv": "false", "secretName": creds.secretRef.secretName} | {
        k: str(ref[k]) for k in keys
    }


def _s3_session(
    provider: str, config: ProviderConfig, bucket: str, key: str, query: str
) -> SessionInfo:
    if config.empty or query:
        return SessionInfo(Provider=provider, Params={"fromEnv": "true"})
    default = config.default
    if default is None or default.credentials is None:
        raise StorageConfigError(f"invalid provider config: {provider} has no default credentials")
    keys = ("accessKeyKey", "secretKeyKey")
    params = {
        "endpoint": default.endpoint,
        "region": default.region,
        "disableSSL": _bool(default.disableSSL, False),
        "forcePathStyle": _bool(default.forcePathStyle, True),
        "maxRetries": str(
            DEFAULT_MAX_RETRIES if default.maxRetries is None else default.maxRetries
        ),
    } | _credential_params(default.credentials, "default", keys)
    override = config.override_for(bucket, key)
    if override is not None:
        if override.credentials is None:
            raise StorageConfigError(
                f"invalid provider config: the {provider} override for bucket "
                f"{override.bucketName!r} has no credentials"
            )
        for name in ("endpoint", "region"):
            if getattr(override, name):
                params[name] = getattr(override, name)
        for name, fallback in (("disableSSL", False), ("forcePathStyle", True)):
            if getattr(override, name) is not None:
                params[name] = _bool(getattr(override, name), fallback)
        if override.maxRetries is not None:
            params["maxRetries"] = str(override.maxRetries)
        for name in ("fromEnv", "secretName", *keys):
            params.pop(name, None)
        params |= _credential_params(override.credentials, "override", keys)
    return SessionInfo(Provider=provider, Params=params)


def _gcs_session(config: ProviderConfig, bucket: str, key: str) -> SessionInfo:
    if config.empty:
        return SessionInfo(Provider="gs", Params={"fromEnv": "true"})
    default = config.default
    if default is None or default.credentials is None:
        raise StorageConfigError("invalid provider config: gs has no default credentials")
    params = _credential_params(default.credentials, "default", ("tokenKey",))
    override = config.override_for(bucket, key)
    if override is not None:
        if override.credentials is None:
            raise StorageConfigError(
                f"invalid provider config: the gs override for bucket {override.bucketName!r} "
                "has no credentials"
            )
        params = _credential_params(override.credentials, "override", ("tokenKey",))
    return SessionInfo(Provider="gs", Params=params)
