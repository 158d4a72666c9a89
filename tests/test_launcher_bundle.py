"""The launcher bundle (``kfpd launcher-bundle``) runs real lightweight components in an
"image" that has only a bare python3 and the component's own kfp: no kfpd, no pydantic.

The image is a venv of the system's /usr/bin/python3 holding kfp and its dependencies only
(linked from this environment); every launcher runs with an empty environment but PATH, as
``env -i`` would start it. A pipeline with artifacts goes through a real kfpd server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

import kfpd
from kfpd.api.app import create_app
from kfpd.client.http import KfpdClient
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.executors.base import ExitCallback, TaskExit
from kfpd.executors.bundle import build_bundle, lite_schema_module
from kfpd.schemas.launch import LaunchSpec
from tests.conftest import _free_port, _serve
from tests.s3server import S3Server, s3_server  # noqa: F401  (the session fixture)
from tests.test_object_storage_s3 import _write_secrets, launcher_config
from tests.test_orchestrator import wait_final
from tests.test_run_lifecycle import _start, _task

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _closure(name: str) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        key = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if key in seen:
            continue
        dist = metadata.distribution(key)
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare python3 with kfp (what a lightweight component's image provides)."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3 to play a bare image's interpreter")
    root = tmp_path_factory.mktemp("image")
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(root)], check=True)
    (site,) = root.glob("lib/python3*/site-packages")
    for dist in _closure("kfp"):
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top.startswith("..") or top == "__pycache__":
                continue
            target = Path(str(dist.locate_file(top)))
            if target.exists() and not (site / top).exists():
                (site / top).symlink_to(target)
    return root / "bin"


def _bare(image: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(image / "python3"), *argv], env={"PATH": str(image)}, capture_output=True, text=True
    )


class BundleExecutor:
    """Runs each launcher as `env -i PATH=<image> python3 launcher.pyz --spec FILE`."""

    def __init__(self, bundle: Path, image: Path, work: Path) -> None:
        self.bundle, self.image, self.work = bundle, image, work

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        task_dir = self.work / spec.task_id
        task_dir.mkdir(parents=True)
        spec_file = task_dir / "spec.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(spec.model_dump_json())
        proc = subprocess.Popen(
            ["python3", str(self.bundle), "--spec", str(spec_file)],
            env={"PATH": str(self.image)},
            cwd=task_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            executable=str(self.image / "python3"),
        )

        def wait() -> None:
            out, _ = proc.communicate()
            code = proc.returncode
            on_exit(TaskExit(spec.task_id, code, None if code == 0 else out.decode()[-2000:]))

        threading.Thread(target=wait, daemon=True).start()

    def cancel(self, task_id: str) -> None:
        del task_id

    def shutdown(self) -> None:
        pass


def test_the_image_has_neither_kfpd_nor_pydantic(image: Path) -> None:
    assert _bare(image, "-c", "import kfp.dsl.executor_main").returncode == 0
    for module in ("kfpd", "pydantic", "pydantic_core"):
        assert _bare(image, "-c", f"import {module}").returncode != 0, module


def test_bundle_runs_a_pipeline_with_artifacts_in_a_bare_image(image: Path, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "launcher.pyz")
    executor = BundleExecutor(bundle, image, tmp_path / "tasks")
    db_url = f"sqlite:///{tmp_path / 'kfpd.sqlite'}"  # the launcher does not care which
    upgrade(db_url)
    database = Database(db_url)
    port = _free_port()
    app = create_app(Settings(data_dir=tmp_path, port=port), database=database, executor=executor)
    server, thread = _serve(app, port)
    try:
        with KfpdClient(f"http://127.0.0.1:{port}") as client:
            run_id = _start(client, "ray_pipelines:artifacts", text="from a bare image")
            run = wait_final(client, run_id, timeout=120)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        database.dispose()
    assert run.state and run.state.name == "SUCCEEDED", run.error
    reader = _task(run.tasks or [], "read-text")
    outputs = {p.parameter_key: p.value for p in (reader.outputs.parameters or [])}  # type: ignore[union-attr]
    assert outputs == {"Output": "FROM A BARE IMAGE"}


def test_the_bundles_models_have_the_servers_fields() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(lite_schema_module(), "lite", "exec"), namespace)
    from kfpd.schemas import launch

    for name, fields in namespace["FIELDS"].items():
        assert set(fields) == set(getattr(launch, name).model_fields), name
    spec = launch.LaunchSpec.model_validate_json(
        json.dumps(
            {
                "server_url": "http://x",
                "token": "t",
                "run_id": "r",
                "task_id": "k",
                "task_name": "n",
                "pipeline_root": "file:///tmp",
                "container": {"image": "i", "env": [{"name": "A", "value": "1"}]},
                "input_artifacts": {"in": [{"name": "a", "uri": "file:///a"}]},
                "output_artifacts": {"out": {"name": "o", "uri": "file:///o"}},
            }
        )
    )
    lite = namespace["LaunchSpec"].model_validate_json(spec.model_dump_json())
    assert lite.container.env[0].name == "A"
    assert lite.input_artifacts["in"][0].uri == "file:///a"
    assert lite.model_dump() == spec.model_dump(mode="json")
    with pytest.raises(ValueError, match="server_url is required"):
        namespace["LaunchSpec"].model_validate({})


def _run_with_bundle(image: Path, tmp_path: Path, server: S3Server, text: str) -> tuple[Any, str]:
    """The artifacts pipeline through a real server whose pipeline root is s3:// (SeaweedFS),
    every task run by the bundle in ``image``: (the final run, the pipeline root)."""
    bundle = build_bundle(tmp_path / "launcher.pyz")
    executor = BundleExecutor(bundle, image, tmp_path / "tasks")
    db_url = f"sqlite:///{tmp_path / 'kfpd.sqlite'}"
    upgrade(db_url)
    database = Database(db_url)
    port = _free_port()
    _write_secrets(tmp_path, server)
    root = f"s3://{server.bucket}/bundle-{tmp_path.name}"
    config = tmp_path / "kfp-launcher.yaml"
    config.write_text(yaml.safe_dump(launcher_config(server, root)))
    settings = Settings(data_dir=tmp_path, port=port, launcher_config=config)
    uvicorn_server, thread = _serve(
        create_app(settings, database=database, executor=executor), port
    )
    try:
        with KfpdClient(f"http://127.0.0.1:{port}") as client:
            run_id = _start(client, "ray_pipelines:artifacts", text=text)
            return wait_final(client, run_id, timeout=120), root
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        database.dispose()


def _placement(task: Any) -> dict[str, str]:
    properties = task.status_metadata.custom_properties or {}
    placement: dict[str, str] = properties.get("placement") or {}
    return placement


@pytest.mark.s3
def test_s3_root_in_an_image_without_kfpd_fails_the_task_saying_which_image(
    image: Path,
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
) -> None:
    run, root = _run_with_bundle(image, tmp_path, s3_server, "no s3 here")
    assert run.state and run.state.name == "FAILED"
    writer = _task(run.tasks or [], "write-text")
    message = writer.status_metadata.message  # type: ignore[union-attr]
    assert message.startswith("artifacts at 's3://"), message
    assert f"pip install 'kfpd[s3]=={kfpd.__version__}'" in message
    assert "deploy/Dockerfile --target task" in message and "the image has no kfpd" in message
    assert "Traceback" not in message
    assert _placement(writer)["launcher"].endswith("bundle (file:// artifacts only)")
    assert not s3_server.filesystem().exists(root.removeprefix("s3://")), "nothing uploaded"


@pytest.mark.s3
def test_the_bundle_runs_the_images_own_kfpd_for_s3_artifacts(
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
) -> None:
    """An image with kfpd[s3] of the server's version (here: this environment's python, still
    started with an empty environment): the bundle hands over to it and artifacts go to S3."""
    image = Path(sys.executable).parent
    run, root = _run_with_bundle(image, tmp_path, s3_server, "through s3")
    assert run.state and run.state.name == "SUCCEEDED", run.error
    reader = _task(run.tasks or [], "read-text")
    outputs = {p.parameter_key: p.value for p in (reader.outputs.parameters or [])}  # type: ignore[union-attr]
    assert outputs == {"Output": "THROUGH S3"}
    assert _placement(reader)["launcher"] == f"kfpd {kfpd.__version__} installed in the image"
    fs = s3_server.filesystem()
    stored = {key: fs.cat(key) for key in fs.find(root.removeprefix("s3://"))}
    assert b"through s3" in stored.values(), sorted(stored)
