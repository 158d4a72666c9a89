"""Hostile pipeline files, built small and fast: what tests/test_input_limits.py submits."""

from __future__ import annotations

import gzip
import struct
import tarfile
import zlib

GIB = 1 << 30


def zip_of_zeros(
    name: str = "pipeline.yaml", size: int = GIB, declared: int | None = None
) -> bytes:
    """A zip holding ``size`` zero bytes (~1 KB per MiB). The deflate stream is one 1 MiB
    block ended by a full flush, repeated: a full flush resets the compressor, so every
    repetition compresses to the same bytes. ``declared``: the size the headers claim."""
    chunk = b"\0" * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = block * (size // len(chunk)) + compressor.flush()
    crc = 0
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    usize = size if declared is None else declared
    encoded = name.encode()
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), usize, len(encoded), 0
    )
    central = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        20,
        20,
        0,
        8,
        0,
        0x21,
        crc,
        len(data),
        usize,
        len(encoded),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    offset = len(local) + len(encoded) + len(data)
    directory = central + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), offset, 0)
    return local + encoded + data + directory + end


def tar_gz_claiming(size: int = GIB) -> bytes:
    """A .tar.gz whose pipeline.yaml header claims ``size`` bytes (the content is cut short:
    the size in the header is what must be refused)."""
    header = tarfile.TarInfo("pipeline.yaml")
    header.size = size
    raw = header.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 4096
    return gzip.compress(raw)


def alias_bomb(levels: int = 9) -> bytes:
    """~1 KB of YAML that expands to 9**levels strings under deploymentSpec."""
    lines = [
        "deploymentSpec:",
        '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for i in range(1, levels):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"  l{i}: &l{i} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def deep_json(depth: int = 2000) -> bytes:
    return (
        b'{"pipelineInfo": {"name": "deep"}, "deploymentSpec": {"a": '
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )


def deep_yaml(depth: int = 2000) -> bytes:
    return b"deploymentSpec:\n  a: " + b"[" * depth + b"]" * depth + b"\n"
