"""Datasets, a model and metrics moving through an object store (tests/test_object_storage.py)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component(base_image="python:3.11")
def make_data(rows: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as f:
        f.write("x,y\n")
        for i in range(rows):
            f.write(f"{i},{2 * i}\n")
    data.metadata["rows"] = rows


@dsl.component(base_image="python:3.11")
def train(data: Input[Dataset], model: Output[Model], metrics: Output[Metrics]) -> int:
    import os

    with open(data.path) as f:
        lines = f.read().splitlines()[1:]
    slope = sum(int(y) for _, y in (ln.split(",") for ln in lines)) / max(
        1, sum(int(x) for x, _ in (ln.split(",") for ln in lines))
    )
    os.makedirs(model.path, exist_ok=True)
    with open(os.path.join(model.path, "weights.txt"), "w") as f:
        f.write(f"slope={slope}\n")
    metrics.log_metric("slope", slope)
    return len(lines)


@dsl.component(base_image="python:3.11")
def check(model: Input[Model], rows: int) -> str:
    import os

    with open(os.path.join(model.path, "weights.txt")) as f:
        return f"{rows}:{f.read().strip()}"


@dsl.pipeline(name="storage-demo")
def storage_demo(rows: int = 4) -> str:
    made = make_data(rows=rows)
    trained = train(data=made.outputs["data"])
    return check(model=trained.outputs["model"], rows=trained.outputs["Output"]).output
