"""Pipelines for the Ray executor's tests: artifacts between two tasks with resource requests,
a task that sleeps (to terminate it, or to lose its node) after writing its pid, and one that
takes memory until Ray's memory monitor kills it (tests/test_executor_ray_oom.py)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11")
def write_text(text: str, data: Output[Dataset]):
    with open(data.path, "w") as fh:
        fh.write(text)


@dsl.component(base_image="python:3.11")
def read_text(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read().upper()


@dsl.pipeline(name="ray-artifacts")
def artifacts(text: str = "hello ray") -> str:
    made = write_text(text=text).set_cpu_limit("1").set_memory_limit("100M")
    return read_text(data=made.outputs["data"]).set_cpu_limit("500m").output


@dsl.component(base_image="python:3.11")
def sleeper(pid_file: str, seconds: int) -> str:
    import os
    import time

    with open(pid_file + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(seconds)
    return "woke"


@dsl.pipeline(name="ray-sleep")
def sleep(pid_file: str, seconds: int = 600) -> str:
    return sleeper(pid_file=pid_file, seconds=seconds).set_caching_options(False).output


@dsl.component(base_image="python:3.11")
def memory_hog(pid_file: str, step_mb: int, max_mb: int) -> str:
    import os
    import time

    with open(pid_file + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    held = []
    for _ in range(max_mb // step_mb):
        held.append(b"\x01" * (step_mb * 2**20))  # written, so resident: not lazy zero pages
        time.sleep(0.1)
    return f"not killed after {max_mb} MB"


@dsl.pipeline(name="ray-memory-hog")
def hog(pid_file: str, step_mb: int = 100, max_mb: int = 3000) -> str:
    task = memory_hog(pid_file=pid_file, step_mb=step_mb, max_mb=max_mb)
    task.set_caching_options(False).set_retry(num_retries=1, backoff_duration="0s")
    return task.output
