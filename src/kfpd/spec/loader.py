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
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
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


def _from_archive_members(members: dict[str, bytes]) -> LoadedSpec:
    specs = {n: b for n, b in members.items() if n.lower().endswith(_SPEC_SUFFIXES)}
    chosen = next((b for n, b in specs.items() if n.rsplit("/", 1)[-1] == "pipeline.yaml"), None)
    if chosen is None:
        if len(specs) != 1:
            raise InvalidArgument(
                "archive must contain pipeline.yaml or exactly one .yaml/.json file"
            )
        chosen = next(iter(specs.values()))
    return _decode(chosen)


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
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        except zipfile.BadZipFile as exc:
            raise InvalidArgument(f"invalid zip archive {filename!r}") from exc
        return _from_archive_members(members)
    if data[:2] == b"\x1f\x8b" or filename.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
                members = {}
                for m in tf.getmembers():
                    if m.isfile():
                        fh = tf.extractfile(m)
                        if fh is not None:
                            members[m.name] = fh.read()
        except tarfile.TarError as exc:
            raise InvalidArgument(f"invalid tar archive {filename!r}") from exc
        return _from_archive_members(members)
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return split_spec(json.loads(data))
        except json.JSONDecodeError:
            pass  # YAML is a superset; let the YAML parser report the error
    return _decode(data)
