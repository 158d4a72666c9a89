"""Small pipelines whose IR the planner tests read (never run)."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def echo(text: str) -> str:
    return text


@dsl.pipeline(name="branches")
def branches(n: int = 1) -> str:
    with dsl.If(n == 1):
        a = echo(text="one")
    with dsl.Elif(n == 2):
        b = echo(text="two")
    with dsl.Else():
        c = echo(text="many")
    return echo(text=dsl.OneOf(a.output, b.output, c.output)).output


@dsl.pipeline(name="limited")
def limited() -> None:
    with dsl.ParallelFor([1, 2, 3, 4], parallelism=2) as x:
        echo(text=str(x)).set_caching_options(False)
