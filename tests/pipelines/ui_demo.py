"""The UI's demo pipeline: an exit handler around a producer, a ParallelFor over training
tasks, a condition, and artifacts of every previewable kind plus scalar and classification
metrics. Its components need only the Python standard library, so a real run can execute it."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


@dsl.component(base_image="python:3.11")
def make_data(data: Output[Dataset], report: Output[Markdown], page: Output[HTML]) -> int:
    import time

    time.sleep(4)  # long enough for the browser to see the task RUNNING
    with open(data.path, "w") as fh:
        fh.write("x,y\n1,2\n3,4\n5,6\n")
    with open(report.path, "w") as fh:
        fh.write("# Data report\n\nThree **rows**.\n")
    with open(page.path, "w") as fh:
        fh.write("<h1>Data page</h1><script>document.title = 'scripted';</script>")
    print("made 3 rows")
    return 3


@dsl.component(base_image="python:3.11")
def train(
    x: int, lr: float, data: Input[Dataset], model: Output[Model], metrics: Output[Metrics]
) -> float:
    with open(data.path) as fh:
        rows = len(fh.readlines()) - 1
    score = round(x * lr + rows / 10, 3)
    with open(model.path, "w") as fh:
        fh.write(f"weights for x={x}\n")
    metrics.log_metric("score", score)
    print(f"training with x={x}: score {score}")
    return score


@dsl.component(base_image="python:3.11")
def evaluate(
    data: Input[Dataset], cm: Output[ClassificationMetrics], metrics: Output[Metrics]
) -> None:
    cm.set_confusion_matrix_categories(["cat", "dog"])
    cm.log_confusion_matrix_row("cat", [7, 1])
    cm.log_confusion_matrix_row("dog", [2, 9])
    cm.log_roc_curve([0.0, 0.2, 1.0], [0.0, 0.8, 1.0], [1.0, 0.5, 0.0])
    metrics.log_metric("accuracy", 0.84)
    print("evaluated")


@dsl.component(base_image="python:3.11")
def notify(status: dsl.PipelineTaskFinalStatus) -> str:
    print(f"pipeline finished: {status.state}")
    return status.state


@dsl.pipeline(name="ui-demo")
def ui_demo(threshold: int = 1, lr: float = 0.1) -> None:
    exit_task = notify()
    with dsl.ExitHandler(exit_task):
        made = make_data()
        with dsl.ParallelFor([1, 2, 3]) as item:
            train(x=item, lr=lr, data=made.outputs["data"])
        with dsl.If(made.outputs["Output"] > threshold):
            evaluate(data=made.outputs["data"])
