"""Pipelines for the Ray executor's tests: artifacts between two tasks with resource requests,
and a task that sleeps (to terminate it, or to lose its node) after writing its pid."""

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
