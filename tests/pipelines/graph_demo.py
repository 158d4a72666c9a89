"""A small pipeline with a nested pipeline, a ParallelFor, a condition and artifacts.

Compiled by the tests with the real kfp SDK; the API tests record its run graph by hand.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


@dsl.component(base_image="python:3.11")
def make_data(data: Output[Dataset], metrics: Output[Metrics]) -> int:
    with open(data.path, "w") as fh:
        fh.write("1,2,3\n")
    metrics.log_metric("rows", 3)
    return 3


@dsl.component(base_image="python:3.11")
def square(x: int, data: Input[Dataset]) -> int:
    return x * x


@dsl.component(base_image="python:3.11")
def summarize(values: list, data: Input[Dataset]) -> str:
    return str(sum(values))


@dsl.pipeline(name="inner")
def inner(data: Input[Dataset]) -> str:
    return summarize(values=[1, 2], data=data).output


@dsl.pipeline(name="graph-demo")
def graph_demo(threshold: int = 1) -> None:
    made = make_data()
    with dsl.ParallelFor([1, 2]) as item:
        square(x=item, data=made.outputs["data"])
    with dsl.If(made.outputs["Output"] > threshold):
        inner(data=made.outputs["data"])
