"""Test helpers: compiled pipelines and request shorthands."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
JSON = {"content-type": "application/json"}  # for requests whose body is given as bytes


@functools.cache
def compiled(name: str) -> dict[str, Any]:
    """Compile a pipeline with the real kfp SDK: ``name`` is the pipeline function in
    tests/pipelines/<name>.py, or ``module:function``."""
    import importlib
    import tempfile

    from kfp import compiler

    module_name, _, name = name.rpartition(":") if ":" in name else (name, "", name)
    module = importlib.import_module(f"tests.pipelines.{module_name}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(getattr(module, name), str(path))
        spec: dict[str, Any] = yaml.safe_load(path.read_text())
        return spec


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()
