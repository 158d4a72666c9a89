"""Moving artifacts between their URIs and local paths.

``file://`` URIs (and bare paths) are local: the task reads and writes them in place. Every
other scheme goes through fsspec (``s3://`` needs s3fs, ``gs://`` gcsfs; credentials and
options come from fsspec's own configuration, e.g. ``FSSPEC_S3_*`` variables or
``~/.config/fsspec``): inputs are downloaded before the command runs, outputs uploaded after.
"""

from __future__ import annotations

import os
import shutil
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
        import fsspec  # only remote URIs pay for the import

        try:
            return fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"no storage backend for {uri!r}: {exc}") from exc

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
