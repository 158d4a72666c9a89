"""Choosing an executor by name, and the resource mapping remote executors share."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kfpd.cli.main import app as cli
from kfpd.executors.local import LocalExecutor
from kfpd.executors.ray_executor import oom_message, ray_options
from kfpd.executors.registry import ExecutorConfig, ExecutorConfigError, create_executor
from kfpd.executors.resources import QuantityError, parse_quantity, requests_of


def test_local_is_the_default(tmp_path: Path) -> None:
    executor = create_executor(ExecutorConfig(work_root=tmp_path))
    try:
        assert isinstance(executor, LocalExecutor)
    finally:
        executor.shutdown()
    assert ExecutorConfig().applies_platform_locally
    assert ExecutorConfig(kind="ray").applies_platform_locally
    assert not ExecutorConfig(kind="kubernetes").applies_platform_locally


def test_unknown_or_incomplete_executors_are_refused() -> None:
    with pytest.raises(ExecutorConfigError, match="unknown executor 'slurm'"):
        create_executor(ExecutorConfig(kind="slurm"))
    with pytest.raises(ExecutorConfigError, match="--ray-address"):
        create_executor(ExecutorConfig(kind="ray"))
    with pytest.raises(ExecutorConfigError, match="--launcher-image"):
        create_executor(ExecutorConfig(kind="kubernetes"))


def test_server_flag_refuses_an_unknown_executor(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["server", "--data-dir", str(tmp_path), "--executor", "slurm"])
    assert result.exit_code != 0
    assert "executor" in result.output and "slurm" in result.output


def test_quantities() -> None:
    assert parse_quantity("500m") == 0.5
    assert parse_quantity("2") == 2.0
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("100M") == 100e6
    assert parse_quantity(1.5) == 1.5
    with pytest.raises(QuantityError):
        parse_quantity("lots")


def test_requests_prefer_quantities_over_numbers() -> None:
    requests = requests_of(
        {"cpuLimit": 2.0, "resourceCpuLimit": "1500m", "memoryLimit": 0.5, "cpuRequest": 0.25}
    )
    assert requests.cpu_limit == "1500m"
    assert requests.cpu_request == "0.25"
    assert requests.cpu == 0.25  # the request, when there is one
    assert requests.memory_limit == "0.5G"
    assert requests.memory_bytes == 0.5e9
    with pytest.raises(QuantityError, match="task resources"):
        requests_of({"resourceMemoryLimit": "a lot"})


def test_ray_options_map_cpu_memory_and_accelerators() -> None:
    assert ray_options({}) == {}
    assert ray_options({"resourceCpuLimit": "500m", "resourceMemoryLimit": "1Gi"}) == {
        "num_cpus": 0.5,
        "memory": 2**30,
    }
    gpu = {"accelerator": {"resourceType": "nvidia.com/gpu", "resourceCount": "2"}}
    assert ray_options(gpu) == {"num_gpus": 2}
    assert ray_options({"accelerator": {"type": "NVIDIA_TESLA_T4", "count": "1"}}) == {
        "num_gpus": 1
    }
    tpu = {"accelerator": {"resourceType": "google.com/tpu", "resourceCount": "4"}}
    assert ray_options(tpu) == {"resources": {"google.com/tpu": 4}}


def test_rays_oom_error_becomes_a_short_oom_message() -> None:
    """Ray's text as its memory monitor wrote it in tests/test_executor_ray_oom.py (which
    provokes it on a real cluster), report tables cut short."""
    ray_exceptions = pytest.importorskip("ray.exceptions")
    text = (
        "1 worker(s) were killed due to the node running low on memory. Memory on the node "
        "(IP: 192.0.2.2, ID: 27ac) was 5.38GB used / 23.54GB limit (0.228467)\n"
        "OOM kill reason: Memory usage 5765185536B exceeded threshold of 5717476864B "
        "(22.6% of 25276203008B limit)\n"
        "Object store memory usage: [- objects spillable: 0\n" + "- bytes in use: 0\n" * 50
    )
    message = oom_message(ray_exceptions.OutOfMemoryError(text))
    assert message.startswith("OOM: Ray's memory monitor killed the task's worker")
    assert "Memory usage 5765185536B exceeded threshold of 5717476864B" in message
    assert "bytes in use" not in message
    bare = oom_message(ray_exceptions.OutOfMemoryError("node low on memory"))
    assert bare.startswith("OOM: ") and "(node low on memory)" in bare


def test_server_explains_a_missing_executor_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["server", "--data-dir", str(tmp_path), "--executor", "kubernetes"]
    )
    assert result.exit_code == 2
    assert "--executor kubernetes needs --launcher-image IMAGE" in result.output
