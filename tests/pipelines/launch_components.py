"""Components the launcher and executor tests run (compiled one by one with the kfp SDK).

No ``from __future__ import annotations`` here: kfp reads the annotations as objects.
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import (
    ClassificationMetrics,
    Dataset,
    Input,
    Metrics,
    Output,
    OutputPath,
    SlicedClassificationMetrics,
)

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def add_one(x: int) -> int:
    return x + 1


@dsl.component(base_image=IMAGE)
def produce(
    text: str,
    data: Output[Dataset],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    sliced: Output[SlicedClassificationMetrics],
    count: OutputPath(int),  # type: ignore[valid-type]
) -> str:
    print("producing", text)
    with open(data.path, "w") as f:
        f.write(text * 2)
    data.metadata["rows"] = 2
    metrics.log_metric("accuracy", 0.9)
    metrics.log_metric("loss", 0.25)
    roc.log_confusion_matrix(["a", "b"], [[1, 2], [3, 4]])
    # (kfp 2.17's SlicedClassificationMetrics helpers fail on a fresh output: set metadata.)
    sliced.metadata["evaluationSlices"] = [{"slice": "all", "confidenceMetrics": []}]
    with open(count, "w") as f:
        f.write("7")
    return text.upper()


@dsl.component(base_image=IMAGE)
def consume(data: Input[Dataset]) -> str:
    with open(data.path) as f:
        return f.read() + f"|{data.metadata['rows']}"


@dsl.component(base_image=IMAGE)
def fail(msg: str) -> None:
    print("failing on purpose")
    raise ValueError(msg)


@dsl.component(base_image=IMAGE)
def sleepy(seconds: float) -> None:
    import time

    print("started", flush=True)
    time.sleep(seconds)


@dsl.component(base_image=IMAGE)
def self_kill() -> None:
    import os
    import signal

    print("about to die", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


@dsl.container_component
def shell_op(
    text: str,
    data: Input[Dataset],
    out: Output[Dataset],
    out_param: dsl.OutputPath(str),  # type: ignore[valid-type]
    opt: Optional[str] = None,  # noqa: UP045,
) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(
        image="alpine:3.19",
        command=[
            "sh",
            "-c",
            dsl.ConcatPlaceholder(
                [
                    'echo "args: $*"; echo ',
                    text,
                    " $(cat ",
                    data.path,
                    ") > ",
                    out.path,
                    " && printf %s ",
                    dsl.IfPresentPlaceholder(input_name="opt", then=opt, else_="none"),
                    " > ",
                    out_param,
                ]
            ),
        ],
        args=[
            "shell-op",
            dsl.IfPresentPlaceholder(input_name="opt", then=["--opt", opt], else_=["--no-opt"]),
        ],
    )


@dsl.container_component
def missing_command() -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image="example.com/tool:1", command=["kfpd-no-such-command"])


def uses_probe(x: int) -> str:
    import kfpd_probe  # installed from packages_to_install, not on the host

    return f"{kfpd_probe.GREETING} {x}"


def with_packages(packages: list[str], index_urls: Optional[list[str]] = None) -> object:  # noqa: UP045
    """``uses_probe`` as a component that installs ``packages`` first."""
    return dsl.component(base_image=IMAGE, packages_to_install=packages, pip_index_urls=index_urls)(
        uses_probe
    )
