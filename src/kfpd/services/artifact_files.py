"""Reading artifact bytes for the UI: local ``file://`` URIs under the server's artifact root,
and objects in the stores of the launcher configuration (``s3://``, ``minio://``, ``gs://``).

A ``Location`` is an fsspec filesystem and a path in it. Local paths are resolved (symlinks
followed) and must stay inside the root, so an artifact row cannot be used to read arbitrary
files of the server; remote ones are read with the provider settings that serve their URI.
Inside an artifact, ``..`` and absolute paths are refused either way. Previews are capped;
downloads stream.
"""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from kfpd.db.models import Artifact
from kfpd.domain.enums import ArtifactType
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound, PayloadTooLarge
from kfpd.services.storage import Storage
from kfpd.storage.launcher_config import is_remote

PREVIEW_TEXT_BYTES = 256 * 1024  # text, CSV and markdown previews show at most this much
RENDER_MAX_BYTES = 5 * 1024 * 1024  # HTML/markdown rendered in the sandboxed frame
IMAGE_MAX_BYTES = 20 * 1024 * 1024  # images shown inline
DIRECTORY_ENTRIES = 500
STREAM_CHUNK = 256 * 1024

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg"}
CSV_EXTENSIONS = {".csv", ".tsv"}
MARKDOWN_EXTENSIONS = {".md", ".markdown"}
HTML_EXTENSIONS = {".html", ".htm"}


@dataclass
class DirEntry:
    path: str  # relative to the artifact's directory
    size: int
    is_dir: bool


@dataclass
class Preview:
    kind: str  # text | csv | markdown | html | image | binary | directory | empty
    size: int = 0
    text: str | None = None
    truncated: bool = False
    content_type: str = "application/octet-stream"
    path: str = ""  # the previewed file, relative to the artifact URI ("" = the URI itself)
    entries: list[DirEntry] = field(default_factory=list)


class StoreUnavailable(FailedPrecondition):
    """The object store refused or could not be reached."""


@dataclass(frozen=True)
class Location:
    """A file or directory in a filesystem: local (``local_path`` set) or an object store."""

    fs: Any  # an fsspec filesystem
    path: str
    local_path: Path | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    def child(self, relative: str) -> Location:
        """A file inside an artifact directory; ``..`` and absolute paths are refused."""
        if not relative:
            return self
        if self.local_path is not None:
            candidate = (self.local_path / relative).resolve()
            if relative.startswith("/") or not candidate.is_relative_to(self.local_path):
                raise InvalidArgument("path must name a file inside the artifact")
            return Location(self.fs, str(candidate), candidate)
        parts = relative.split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InvalidArgument("path must name a file inside the artifact")
        return Location(self.fs, f"{self.path.rstrip('/')}/{relative}")

    def _call(self, what: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.fs, what)(*args, **kwargs)
        except (FileNotFoundError, NotFound):
            raise
        except Exception as exc:  # denied, unreachable, misconfigured: say which
            raise StoreUnavailable(
                f"the object store could not be read ({type(exc).__name__}: {exc})"
            ) from exc

    def exists(self) -> bool:
        return bool(self._call("exists", self.path))

    def isdir(self) -> bool:
        return bool(self._call("isdir", self.path))

    def size(self) -> int:
        return int(self._call("size", self.path) or 0)

    def read_head(self, limit: int) -> bytes:
        with self._call("open", self.path, "rb") as fh:
            data: bytes = fh.read(limit)
            return data

    def read_all(self) -> bytes:
        return self.read_head(-1)

    def stream(self) -> Iterator[bytes]:
        with self._call("open", self.path, "rb") as fh:
            while chunk := fh.read(STREAM_CHUNK):
                yield chunk


def locate(artifact: Artifact, root: Path, storage: Storage | None = None) -> Location:
    """Where an artifact's bytes are; local ones are refused when outside ``root``."""
    uri = artifact.uri or ""
    if not uri:
        raise FailedPrecondition("this artifact has no URI: its value lives in its metadata")
    parsed = urlparse(uri)
    if is_remote(uri):
        if storage is None:
            raise FailedPrecondition(f"this server reads no {parsed.scheme} URIs")
        fs, key = storage.locate(uri, artifact.store_session_info)
        return Location(fs, key)
    if parsed.scheme != "file":
        scheme = parsed.scheme or "a bare path"
        raise FailedPrecondition(
            "this server reads file:// artifacts under its artifact root and s3/minio/gs "
            f"objects, not {scheme} URIs"
        )
    if parsed.netloc not in ("", "localhost"):
        raise FailedPrecondition("file:// URIs on another host cannot be read")
    path = Path(unquote(parsed.path)).resolve()
    base = root.resolve()
    if not path.is_relative_to(base):
        raise FailedPrecondition("the artifact's file lies outside the server's artifact root")
    from fsspec.implementations.local import LocalFileSystem

    return Location(LocalFileSystem(), str(path), path)


def require_exists(location: Location) -> Location:
    if not location.exists():
        raise NotFound("the artifact's file does not exist (it may have been deleted)")
    return location


def content_type(location: Location) -> str:
    guessed, _ = mimetypes.guess_type(location.name)
    if guessed:
        return guessed
    return "application/octet-stream"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:6] if line.strip()]
    if len(lines) < 2:
        return False
    for sep in (",", "\t"):
        counts = {line.count(sep) for line in lines[:-1]}  # the last line may be cut
        if len(counts) == 1 and counts.pop() > 0:
            return True
    return False


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def list_directory(location: Location) -> list[DirEntry]:
    base = location.path.rstrip("/")
    if location.local_path is not None:
        base = str(location.local_path)
    found = location._call("find", location.path, maxdepth=None, withdirs=False, detail=True)
    entries: list[DirEntry] = []
    for name in sorted(found):
        relative = name[len(base) :].lstrip("/") if name.startswith(base) else name
        if not relative:
            continue
        entries.append(DirEntry(relative, int(found[name].get("size") or 0), False))
        if len(entries) >= DIRECTORY_ENTRIES:
            break
    return entries


def preview(
    artifact: Artifact, root: Path, relative: str = "", storage: Storage | None = None
) -> Preview:
    """What the artifact page shows: a capped head of text, or how to display the file."""
    base = require_exists(locate(artifact, root, storage))
    target = require_exists(base.child(relative))
    if target.isdir():
        entries = list_directory(target)
        files = [e for e in entries if not e.is_dir]
        if not relative and len(files) == 1:
            # KFP writes many single-file artifacts as a directory holding one file.
            return preview(artifact, root, files[0].path, storage)
        return Preview(kind="directory", entries=entries, path=relative)
    size = target.size()
    head = target.read_head(PREVIEW_TEXT_BYTES) if size else b""
    suffix = target.suffix.lower()
    ctype = content_type(target)
    result = Preview(kind="binary", size=size, content_type=ctype, path=relative)
    if size == 0:
        result.kind = "empty"
        return result
    try:
        atype: ArtifactType | None = ArtifactType(artifact.type)
    except ValueError:
        atype = None
    if suffix in IMAGE_EXTENSIONS or ctype.startswith("image/"):
        # Very large images are offered for download rather than drawn inline.
        result.kind = "image" if size <= IMAGE_MAX_BYTES else "binary"
        result.truncated = size > IMAGE_MAX_BYTES
        return result
    if not _looks_like_text(head):
        return result
    text = _decode(head)
    result.text = text
    result.truncated = size > len(head)
    if suffix in HTML_EXTENSIONS or (atype == ArtifactType.HTML and not suffix):
        result.kind = "html"
    elif suffix in MARKDOWN_EXTENSIONS or (atype == ArtifactType.Markdown and not suffix):
        result.kind = "markdown"
    elif suffix in CSV_EXTENSIONS or _looks_like_csv(text):
        result.kind = "csv"
    else:
        result.kind = "text"
    return result


def read_for_render(
    artifact: Artifact, root: Path, relative: str = "", storage: Storage | None = None
) -> tuple[str, Preview]:
    """The whole text of an HTML or markdown artifact, for the sandboxed frame (capped)."""
    info = preview(artifact, root, relative, storage)
    if info.kind not in {"html", "markdown", "text", "csv"}:
        raise FailedPrecondition(f"a {info.kind} file cannot be rendered as a page")
    if info.size > RENDER_MAX_BYTES:
        raise PayloadTooLarge(
            f"the file is {info.size} bytes; pages over {RENDER_MAX_BYTES} bytes are not rendered "
            "(download it instead)"
        )
    target = locate(artifact, root, storage).child(info.path)
    return _decode(target.read_head(RENDER_MAX_BYTES)), info


def file_for_download(
    artifact: Artifact, root: Path, relative: str = "", storage: Storage | None = None
) -> Location:
    base = require_exists(locate(artifact, root, storage))
    target = require_exists(base.child(relative))
    if target.isdir():
        raise FailedPrecondition("the artifact is a directory: download its files one by one")
    return target
