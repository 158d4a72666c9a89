"""Pipelines for the restart tests: a slow task that counts its starts, then a follow-up."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def slow_counted(counter: str, seconds: float) -> str:
    """Runs at least ``seconds`` and until the test creates ``<counter>.release`` (so it is
    surely still running across the restarts however slow the machine is)."""
    import os
    import time

    with open(counter, "a") as f:
        f.write("started\n")
    began = time.monotonic()
    while time.monotonic() - began < seconds or not os.path.exists(counter + ".release"):
        time.sleep(0.2)
        if time.monotonic() - began > 300:
            break
    return "slept"


@dsl.component(base_image="python:3.11")
def follow_up(previous: str) -> str:
    return previous + " and continued"


@dsl.pipeline(name="survives-restarts")
def survives_restarts(counter: str, seconds: float = 20.0) -> str:
    slow = slow_counted(counter=counter, seconds=seconds).set_caching_options(False)
    return follow_up(previous=slow.output).set_caching_options(False).output


@dsl.pipeline(name="two-counted")
def two_counted(first: str, second: str, seconds: float = 1.0) -> None:
    """Two independent slow tasks: with one executor slot, one waits for the other."""
    slow_counted(counter=first, seconds=seconds).set_caching_options(False)
    slow_counted(counter=second, seconds=seconds).set_caching_options(False)
