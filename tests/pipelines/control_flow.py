"""Control flow the orchestrator must get right (and kfp.local gets wrong): nested loops,
Collected integers, a zero-item loop, If/Else with OneOf, optional inputs, a nested pipeline."""

from typing import Optional

from kfp import dsl


@dsl.component(base_image="python:3.11")
def make_list(n: int) -> list:
    return list(range(1, n + 1))


@dsl.component(base_image="python:3.11")
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image="python:3.11")
def total(values: list) -> int:
    return sum(values)


@dsl.component(base_image="python:3.11")
def describe(label: str, value: int = 0, note: Optional[str] = None) -> str:  # noqa: UP045 (kfp parses Optional)
    return f"{label}:{value}:{note}"


@dsl.component(base_image="python:3.11")
def echo(text: str) -> str:
    return text


@dsl.pipeline(name="inner-sum")
def inner_sum(values: list) -> int:
    return total(values=values).output


@dsl.pipeline(name="control-flow")
def control_flow(n: int = 3, threshold: int = 5) -> str:
    items = make_list(n=n)
    with dsl.ParallelFor(items.output) as x:
        with dsl.ParallelFor([10, 20]) as y:
            add(a=x, b=y)
        doubled = double(x=x)
    summed = total(values=dsl.Collected(doubled.output))
    inner = inner_sum(values=dsl.Collected(doubled.output))
    with dsl.If(summed.output > threshold):
        big = describe(label="big", value=summed.output)
    with dsl.Else():
        small = describe(label="small", value=inner.output)
    chosen = echo(text=dsl.OneOf(big.output, small.output))
    empty = make_list(n=0)
    with dsl.ParallelFor(empty.output) as e:
        double(x=e)
    return chosen.output


@dsl.pipeline(name="limited-loop")
def limited_loop(n: int = 7) -> int:
    items = make_list(n=n)
    with dsl.ParallelFor(items.output, parallelism=2) as x:
        doubled = double(x=x)
    return total(values=dsl.Collected(doubled.output)).output
