"""Moving artifacts between their URIs and local paths.

``file://`` URIs (and bare paths) are local: the task reads and writes them in place. Every
other scheme goes through fsspec (``s3://`` and ``minio://`` need s3fs, ``gs://`` gcsfs):
inputs are downloaded before the command runs, outputs uploaded after. ``SessionStore`` uses
the sessions the server granted this task (endpoint and credentials from the server's
launcher configuration, held in memory only); ``FsspecStore`` falls back to fsspec's own
configuration (``FSSPEC_S3_*`` variables, ``~/.config/fsspec``) for URIs without a session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit


class ObjectStore(Protocol):
    def local_path(self, uri: str) -> str | None:
        """The path a URI already is on this host, or None when it must be transferred."""

    def download(self, uri: str, dest: Path) -> None:
        """Copy the file or directory at ``uri`` to ``dest``."""

    def upload(self, src: Path, uri: str) -> None:
        """Copy the local file or directory ``src`` to ``uri``."""


class StoreError(Exception):
    pass


def file_uri_path(uri: str) -> str | None:
    """The local path of a ``file://`` URI or a bare absolute path; None for other schemes."""
    if uri.startswith("/"):
        return uri
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return unquote(parts.path)
    return None


def path_to_file_uri(path: str) -> str:
    return "file://" + path


class FsspecStore:
    """The default store: local files directly, anything else through fsspec."""

    def local_path(self, uri: str) -> str | None:
        return file_uri_path(uri)

    def _fs(self, uri: str) -> tuple[Any, str]:
        try:
            import fsspec  # only remote URIs pay for the import

            fs, path = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"no storage backend for {uri!r}: {exc}") from exc
        return fs, str(path)

    def download(self, uri: str, dest: Path) -> None:
        local = self.local_path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if local is not None:
            _copy(Path(local), dest)
            return
        fs, path = self._fs(uri)
        try:
            if fs.isdir(path):
                fs.get(path.rstrip("/") + "/", str(dest), recursive=True)
            else:
                fs.get(path, str(dest))
        except FileNotFoundError as exc:
            raise StoreError(f"input artifact {uri!r} does not exist") from exc
        except Exception as exc:
            raise StoreError(f"could not download {uri!r}: {exc}") from exc

    def upload(self, src: Path, uri: str) -> None:
        local = self.local_path(uri)
        if local is not None:
            if os.path.abspath(local) != os.path.abspath(src):
                _copy(src, Path(local))
            return
        fs, path = self._fs(uri)
        try:
            if src.is_dir():
                fs.put(str(src).rstrip("/") + "/", path, recursive=True)
            else:
                fs.put(str(src), path)
        except Exception as exc:
            raise StoreError(f"could not upload {src} to {uri!r}: {exc}") from exc


def _copy(src: Path, dest: Path) -> None:
    if not src.exists():
        raise StoreError(f"{src} does not exist")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copyfile(src, dest)


class SessionStore(FsspecStore):
    """Remote URIs through the sessions the server granted: ``session_for(uri)`` gives the
    fsspec protocol and options; ``minio://`` is S3 at the configured endpoint."""

    def __init__(self, sessions: Sequence[tuple[str, dict[str, Any], Sequence[str]]]) -> None:
        self._by_uri: dict[str, tuple[str, dict[str, Any]]] = {}
        for protocol, options, uris in sessions:
            for uri in uris:
                self._by_uri[uri] = (protocol, options)
        self._filesystems: dict[int, Any] = {}

    def covers(self, uri: str) -> bool:
        return uri in self._by_uri

    def open_all(self) -> None:
        """Make every granted session's filesystem now (StoreError: its backend is missing)."""
        for uri in {id(options): uri for uri, (_, options) in self._by_uri.items()}.values():
            self._fs(uri)

    def _fs(self, uri: str) -> tuple[Any, str]:
        granted = self._by_uri.get(uri)
        if granted is None:
            return super()._fs(uri)
        from kfpd.storage.sessions import StoreSession, fs_path

        protocol, options = granted
        key = id(options)
        fs = self._filesystems.get(key)
        if fs is None:
            try:
                fs = StoreSession(protocol, options).filesystem()
            except Exception as exc:
                raise StoreError(f"no storage backend for {uri!r}: {exc}") from exc
            self._filesystems[key] = fs
        return fs, fs_path(uri)
