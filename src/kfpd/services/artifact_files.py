"""Reading artifact bytes for the UI: local ``file://`` URIs under the server's artifact root only.

Every path is resolved (symlinks followed) and must stay inside the root, so an artifact row
cannot be used to read arbitrary files of the server. Previews are capped; downloads stream.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from kfpd.db.models import Artifact
from kfpd.domain.enums import ArtifactType
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound, PayloadTooLarge

PREVIEW_TEXT_BYTES = 256 * 1024  # text, CSV and markdown previews show at most this much
RENDER_MAX_BYTES = 5 * 1024 * 1024  # HTML/markdown rendered in the sandboxed frame
IMAGE_MAX_BYTES = 20 * 1024 * 1024  # images shown inline
DIRECTORY_ENTRIES = 500

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


def local_path(artifact: Artifact, root: Path) -> Path:
    """The file or directory an artifact's URI names, refused when outside ``root``."""
    uri = artifact.uri or ""
    if not uri:
        raise FailedPrecondition("this artifact has no URI: its value lives in its metadata")
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        scheme = parsed.scheme or "a bare path"
        raise FailedPrecondition(
            f"this server only reads file:// artifacts under its artifact root, not {scheme} URIs"
        )
    if parsed.netloc not in ("", "localhost"):
        raise FailedPrecondition("file:// URIs on another host cannot be read")
    path = Path(unquote(parsed.path)).resolve()
    base = root.resolve()
    if not path.is_relative_to(base):
        raise FailedPrecondition("the artifact's file lies outside the server's artifact root")
    return path


def child_path(base: Path, relative: str) -> Path:
    """A file inside an artifact directory; ``..`` and absolute paths are refused."""
    if not relative:
        return base
    candidate = (base / relative).resolve()
    if relative.startswith("/") or not candidate.is_relative_to(base):
        raise InvalidArgument("path must name a file inside the artifact")
    return candidate


def require_exists(path: Path) -> Path:
    if not path.exists():
        raise NotFound("the artifact's file does not exist (it may have been deleted)")
    return path


def content_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
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


def _read_head(path: Path, limit: int) -> tuple[bytes, int]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        return fh.read(limit), size


def list_directory(path: Path) -> list[DirEntry]:
    entries: list[DirEntry] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                size = full.stat().st_size
            except OSError:
                continue
            entries.append(DirEntry(str(full.relative_to(path)), size, False))
            if len(entries) >= DIRECTORY_ENTRIES:
                return entries
    return entries


def preview(artifact: Artifact, root: Path, relative: str = "") -> Preview:
    """What the artifact page shows: a capped head of text, or how to display the file."""
    base = require_exists(local_path(artifact, root))
    path = require_exists(child_path(base, relative))
    if path.is_dir():
        entries = list_directory(path)
        files = [e for e in entries if not e.is_dir]
        if not relative and len(files) == 1:
            # KFP writes many single-file artifacts as a directory holding one file.
            return preview(artifact, root, files[0].path)
        return Preview(kind="directory", entries=entries, path=relative)
    head, size = _read_head(path, PREVIEW_TEXT_BYTES)
    suffix = path.suffix.lower()
    ctype = content_type(path)
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


def read_for_render(artifact: Artifact, root: Path, relative: str = "") -> tuple[str, Preview]:
    """The whole text of an HTML or markdown artifact, for the sandboxed frame (capped)."""
    info = preview(artifact, root, relative)
    if info.kind not in {"html", "markdown", "text", "csv"}:
        raise FailedPrecondition(f"a {info.kind} file cannot be rendered as a page")
    if info.size > RENDER_MAX_BYTES:
        raise PayloadTooLarge(
            f"the file is {info.size} bytes; pages over {RENDER_MAX_BYTES} bytes are not rendered "
            "(download it instead)"
        )
    base = local_path(artifact, root)
    return _decode(child_path(base, info.path).read_bytes()), info


def file_for_download(artifact: Artifact, root: Path, relative: str = "") -> Path:
    base = require_exists(local_path(artifact, root))
    path = require_exists(child_path(base, relative))
    if path.is_dir():
        raise FailedPrecondition("the artifact is a directory: download its files one by one")
    return path
