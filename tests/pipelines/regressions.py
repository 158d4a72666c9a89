"""Pipelines for the RetryRun-inputs and nested-Collected regressions (issue 9)."""

from typing import List  # noqa: UP035 (kfp parses typing.List for artifact lists)

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image="python:3.11")
def add3(a: int, b: int, c: int) -> int:
    return a + b + c


@dsl.component(base_image="python:3.11")
def show(values: list) -> list:
    return values


@dsl.component(base_image="python:3.11")
def make_dataset(text: str, data: Output[Dataset]):
    with open(data.path, "w") as fh:
        fh.write(text)


@dsl.component(base_image="python:3.11")
def read_dataset(data: Input[Dataset]) -> str:
    with open(data.path) as fh:
        return fh.read()


@dsl.component(base_image="python:3.11")
def read_all(data: Input[List[Dataset]]) -> list:  # noqa: UP006
    return [d.uri for d in data]


@dsl.pipeline(name="nested-collected")
def nested_collected() -> list:
    with dsl.ParallelFor([1, 2]) as x, dsl.ParallelFor([10, 20, 30]) as y:
        summed = add(a=x, b=y)
        made = make_dataset(text="t")
    read_all(data=dsl.Collected(made.outputs["data"]))
    return show(values=dsl.Collected(summed.output)).output


@dsl.pipeline(name="nested-collected-3")
def nested_collected_3() -> list:
    with (
        dsl.ParallelFor([1, 2]) as x,
        dsl.ParallelFor([10, 20]) as y,
        dsl.ParallelFor([100, 200, 300]) as z,
    ):
        summed = add3(a=x, b=y, c=z)
        made = make_dataset(text="t")
    read_all(data=dsl.Collected(made.outputs["data"]))
    return show(values=dsl.Collected(summed.output)).output


@dsl.pipeline(name="retry-inputs")
def retry_inputs(text: str = "hi") -> str:
    made = make_dataset(text=text)
    with dsl.ParallelFor([1, 2]) as _i:
        read_dataset(data=made.outputs["data"])
    return read_dataset(data=made.outputs["data"]).output
