"""From a URI's provider settings (``SessionInfo``) plus credentials to an fsspec filesystem.

Credentials come from kfpd's local secrets (``secretRef``: ``<secrets_dir>/<name>.json``, the
store ``secretAsEnv`` reads) or the server's environment (``fromEnv``: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``GOOGLE_APPLICATION_CREDENTIALS``). The
resulting ``StoreSession`` holds secret values: it lives in memory only (its repr hides them)
and reaches a launcher over its authenticated HTTP call, never through a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfpd.storage.launcher_config import SessionInfo, StorageConfigError, split_uri

SecretLookup = Callable[[str], Mapping[str, str] | None]
FSSPEC_PROTOCOL = {"s3": "s3", "minio": "s3", "gs": "gcs"}


@dataclass(frozen=True)
class StoreSession:
    """An fsspec protocol and its options (credentials included) for some URIs."""

    protocol: str
    options: dict[str, Any] = field(repr=False)
    info: SessionInfo | None = None

    def filesystem(self) -> Any:
        import fsspec  # only remote stores pay for the import

        try:
            return fsspec.filesystem(self.protocol, **self.options)
        except ImportError as exc:
            extra = "s3" if self.protocol == "s3" else "gcs"
            raise StorageConfigError(
                f"{self.protocol} storage needs an extra package: pip install 'kfpd[{extra}]' "
                f"({exc})"
            ) from exc


def fs_path(uri: str) -> str:
    """The path an fsspec filesystem uses for a remote URI: ``bucket/key``."""
    _, bucket, key, _ = split_uri(uri)
    return f"{bucket}/{key}" if key else bucket


def store_session(info: SessionInfo, secrets: SecretLookup, env: Mapping[str, str]) -> StoreSession:
    if info.Provider in ("s3", "minio"):
        return StoreSession("s3", _s3_options(info.Params, secrets, env), info)
    if info.Provider == "gs":
        return StoreSession("gcs", _gcs_options(info.Params, secrets, env), info)
    raise StorageConfigError(f"unsupported object-store provider {info.Provider!r}")


def _secret_value(secrets: SecretLookup, name: str, key: str) -> str:
    data = secrets(name)
    if data is None:
        raise StorageConfigError(f"object-store secret {name!r} does not exist")
    value = data.get(key)
    if not value:
        raise StorageConfigError(f"object-store secret {name!r} has no key {key!r}")
    return value


def endpoint_url(endpoint: str, disable_ssl: bool) -> str:
    """Upstream writes endpoints as host:port, with disableSSL choosing http."""
    if "://" in endpoint:
        return endpoint
    return ("http://" if disable_ssl else "https://") + endpoint


def _s3_options(
    params: Mapping[str, str], secrets: SecretLookup, env: Mapping[str, str]
) -> dict[str, Any]:
    disable_ssl = params.get("disableSSL") == "true"
    options: dict[str, Any] = {}
    config: dict[str, Any] = {}
    if params.get("endpoint"):
        options["endpoint_url"] = endpoint_url(params["endpoint"], disable_ssl)
    if disable_ssl:
        options["use_ssl"] = False
    if params.get("region"):
        options["client_kwargs"] = {"region_name": params["region"]}
    if params.get("forcePathStyle", "true") == "true":
        config["s3"] = {"addressing_style": "path"}
    if params.get("maxRetries"):
        config["retries"] = {"max_attempts": int(params["maxRetries"]), "mode": "standard"}
    if config:
        options["config_kwargs"] = config
    if params.get("fromEnv", "false") == "true":
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            options["key"] = env["AWS_ACCESS_KEY_ID"]
            options["secret"] = env["AWS_SECRET_ACCESS_KEY"]
            if env.get("AWS_SESSION_TOKEN"):
                options["token"] = env["AWS_SESSION_TOKEN"]
        return options
    name = params.get("secretName", "")
    options["key"] = _secret_value(secrets, name, params.get("accessKeyKey", ""))
    options["secret"] = _secret_value(secrets, name, params.get("secretKeyKey", ""))
    return options


def _gcs_options(
    params: Mapping[str, str], secrets: SecretLookup, env: Mapping[str, str]
) -> dict[str, Any]:
    if params.get("fromEnv", "false") == "true":
        path = env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not path:
            return {}  # gcsfs' own default chain (metadata server, gcloud)
        try:
            return {"token": json.loads(Path(path).read_text())}
        except (OSError, ValueError) as exc:
            raise StorageConfigError(
                f"GOOGLE_APPLICATION_CREDENTIALS ({path}) is not a readable JSON key: {exc}"
            ) from exc
    raw = _secret_value(secrets, params.get("secretName", ""), params.get("tokenKey", ""))
    try:
        return {"token": json.loads(raw)}
    except ValueError as exc:
        raise StorageConfigError(
            f"object-store secret {params.get('secretName')!r}: {params.get('tokenKey')!r} is "
            "not a service-account JSON key"
        ) from exc
