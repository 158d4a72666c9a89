"""A small pipeline to try kfpd with: parameters, a dataset artifact, metrics, a loop.

    kfpd run examples/hello_pipeline.py -p rows=5 --wait
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output


@dsl.component(base_image="python:3.11")
def make_table(rows: int, table: Output[Dataset]) -> int:
    """Write a CSV of ``rows`` squares."""
    with open(table.path, "w") as out:
        out.write("n,square\n")
        for n in range(rows):
            out.write(f"{n},{n * n}\n")
    return rows


@dsl.component(base_image="python:3.11")
def summarize(table: Input[Dataset], metrics: Output[Metrics]) -> float:
    """Read the CSV back and log its mean square as a metric."""
    with open(table.path) as src:
        squares = [int(line.split(",")[1]) for line in src.read().splitlines()[1:]]
    mean = sum(squares) / len(squares)
    metrics.log_metric("mean_square", mean)
    metrics.log_metric("rows", len(squares))
    return mean


@dsl.component(base_image="python:3.11")
def greet(name: str) -> str:
    return f"hello {name}"


@dsl.pipeline(name="hello-kfpd", description="Parameters, an artifact, metrics and a loop.")
def hello_pipeline(rows: int = 4) -> float:
    table = make_table(rows=rows)
    with dsl.ParallelFor(["alice", "bob"]) as name:
        greet(name=name)
    return summarize(table=table.outputs["table"]).outputs["Output"]
