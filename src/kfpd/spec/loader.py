"""Turn an uploaded pipeline package (YAML, JSON, .zip, .tar.gz) into spec dicts.

Accepted like the kfp SDK accepts them: a PipelineSpec document, optionally followed by a
second YAML document holding the PlatformSpec, or the ``{pipeline_spec, platform_spec}`` form.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Any

import yaml

from kfpd.domain.errors import InvalidArgument
from kfpd.spec import limits

_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class LoadedSpec:
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] | None = None

    @property
    def pipeline_name(self) -> str:
        info = self.pipeline_spec.get("pipelineInfo") or {}
        return str(info.get("name") or "")

    @property
    def description(self) -> str:
        info = self.pipeline_spec.get("pipelineInfo") or {}
        return str(info.get("description") or "")


def split_spec(value: Any) -> LoadedSpec:
    """Accept a plain PipelineSpec dict or the ``{pipeline_spec, platform_spec}`` wrapper."""
    if not isinstance(value, dict) or not value:
        raise InvalidArgument("pipeline_spec must be a non-empty JSON object")
    if "pipeline_spec" in value or "pipelineSpec" in value:
        extra = set(value) - {"pipeline_spec", "pipelineSpec", "platform_spec", "platformSpec"}
        if extra:
            raise InvalidArgument(f"unknown field(s) beside pipeline_spec: {sorted(extra)}")
        spec = value.get("pipeline_spec", value.get("pipelineSpec"))
        platform = value.get("platform_spec", value.get("platformSpec"))
        if not isinstance(spec, dict):
            raise InvalidArgument("pipeline_spec.pipeline_spec must be an object")
        if platform is not None and not isinstance(platform, dict):
            raise InvalidArgument("pipeline_spec.platform_spec must be an object")
        return LoadedSpec(spec, platform or None)
    return LoadedSpec(value)


def _from_text(text: str) -> LoadedSpec:
    try:
        docs = [d for d in limits.load_yaml_documents(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"pipeline file is not valid YAML or JSON: {exc}") from exc
    if not docs:
        raise InvalidArgument("pipeline file is empty")
    if len(docs) > 2:
        raise InvalidArgument("pipeline file has more than two YAML documents")
    first = docs[0]
    if len(docs) == 2:
        if not isinstance(first, dict) or not isinstance(docs[1], dict):
            raise InvalidArgument("pipeline file documents must be mappings")
        return LoadedSpec(first, docs[1])
    return split_spec(first)


def _is_spec_file(name: str) -> bool:
    return name.lower().endswith(_SPEC_SUFFIXES)


def _from_archive_members(members: dict[str, bytes]) -> LoadedSpec:
    specs = {n: b for n, b in members.items() if _is_spec_file(n)}
    chosen = next((b for n, b in specs.items() if n.rsplit("/", 1)[-1] == "pipeline.yaml"), None)
    if chosen is None:
        if len(specs) != 1:
            raise InvalidArgument(
                "archive must contain pipeline.yaml or exactly one .yaml/.json file"
            )
        chosen = next(iter(specs.values()))
    return _decode(chosen)


def _zip_members(data: bytes, filename: str) -> dict[str, bytes]:
    """The archive's pipeline files, read within the size budget (declared sizes can lie,
    so each read stops at the budget left)."""
    members: dict[str, bytes] = {}
    left = limits.MAX_ARCHIVE_BYTES
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > limits.MAX_ARCHIVE_MEMBERS:
                raise InvalidArgument(
                    f"the archive has more than {limits.MAX_ARCHIVE_MEMBERS} members"
                )
            for info in infos:
                if info.is_dir() or not _is_spec_file(info.filename):
                    continue
                if info.file_size > left:
                    raise limits.archive_budget_exceeded(
                        limits.MAX_ARCHIVE_BYTES - left + info.file_size
                    )
                with zf.open(info) as fh:
                    content = fh.read(left + 1)
                if len(content) > left:
                    raise limits.archive_budget_exceeded(limits.MAX_ARCHIVE_BYTES + 1)
                left -= len(content)
                members[info.filename] = content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise InvalidArgument(f"invalid zip archive {filename!r}: {exc}") from exc
    return members


def _tar_members(data: bytes, filename: str) -> dict[str, bytes]:
    """As _zip_members; members are visited lazily, so a huge one stops the walk before the
    stream behind it is decompressed."""
    members: dict[str, bytes] = {}
    left = limits.MAX_ARCHIVE_BYTES
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for count, member in enumerate(tf, start=1):
                if count > limits.MAX_ARCHIVE_MEMBERS:
                    raise InvalidArgument(
                        f"the archive has more than {limits.MAX_ARCHIVE_MEMBERS} members"
                    )
                if not member.isfile() or not _is_spec_file(member.name):
                    continue
                if member.size > left:
                    raise limits.archive_budget_exceeded(
                        limits.MAX_ARCHIVE_BYTES - left + member.size
                    )
                fh = tf.extractfile(member)
                if fh is not None:
                    members[member.name] = fh.read(member.size)
                    left -= member.size
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgument(f"invalid tar archive {filename!r}: {exc}") from exc
    return members


def _decode(data: bytes) -> LoadedSpec:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument("pipeline file is not UTF-8 text") from exc
    return _from_text(text)


def load_package(data: bytes, filename: str = "") -> LoadedSpec:
    """Load a pipeline package, recognising archives by content rather than by name."""
    if not data.strip():
        raise InvalidArgument("pipeline file is empty")
    if data[:4] == b"PK\x03\x04":
        return _from_archive_members(_zip_members(data, filename))
    if data[:2] == b"\x1f\x8b" or filename.endswith((".tar.gz", ".tgz")):
        return _from_archive_members(_tar_members(data, filename))
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return split_spec(limits.load_json(data, "the pipeline file"))
        except json.JSONDecodeError:
            pass  # YAML is a superset; let the YAML parser report the error
    return _decode(data)
