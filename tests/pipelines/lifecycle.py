"""Pipelines for run lifecycle tests: exit handler after a failure, retries, caching,
a slow task to terminate, artifacts through OneOf and an importer."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output, PipelineTaskFinalStatus


@dsl.component(base_image="python:3.11")
def fail_op(message: str):
    raise RuntimeError(message)


@dsl.component(base_image="python:3.11")
def print_op(message: str) -> str:
    return message


@dsl.component(base_image="python:3.11")
def exit_op(user_input: str, status: PipelineTaskFinalStatus) -> str:
    return f"{user_input}:{status.state}"


@dsl.pipeline(name="exit-after-failure")
def exit_after_failure(message: str = "boom"):
    final = exit_op(user_input="cleanup")
    with dsl.ExitHandler(final):
        first = print_op(message="before")
        fail_op(message=message).after(first)


@dsl.component(base_image="python:3.11")
def flaky(x: int) -> int:
    return x


@dsl.pipeline(name="retrying")
def retrying(x: int = 7) -> int:
    task = flaky(x=x)
    task.set_retry(num_retries=2, backoff_duration="0s", backoff_factor=1.0)
    return task.output


@dsl.component(base_image="python:3.11")
def make_dataset(text: str, data: Output[Dataset]):
    with open(data.path, "w") as fh:
        fh.write(text)


@dsl.component(base_image="python:3.11")
def read_dataset(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read()


@dsl.pipeline(name="cacheable")
def cacheable(text: str = "hello") -> str:
    made = make_dataset(text=text)
    return read_dataset(data=made.outputs["data"]).output


@dsl.component(base_image="python:3.11")
def slow(seconds: int) -> int:
    import time

    time.sleep(seconds)
    return seconds


@dsl.pipeline(name="slow-pipeline")
def slow_pipeline(seconds: int = 30) -> int:
    return slow(seconds=seconds).output


@dsl.pipeline(name="oneof-artifacts")
def oneof_artifacts(flag: str = "a") -> str:
    with dsl.If(flag == "a"):
        a = make_dataset(text="from a")
    with dsl.Else():
        b = make_dataset(text="from b")
    chosen = dsl.OneOf(a.outputs["data"], b.outputs["data"])
    imported = dsl.importer(
        artifact_uri="file:///tmp/kfpd-test-imported.txt", artifact_class=Dataset, reimport=False
    )
    read_dataset(data=imported.output)
    return read_dataset(data=chosen).output


@dsl.pipeline(name="resumable")
def resumable(text: str = "hi") -> str:
    made = make_dataset(text=text)
    read = read_dataset(data=made.outputs["data"])
    read.set_retry(num_retries=1, backoff_duration="0s")
    return read.output
