"""A pipeline for recurring runs: echoes its slot's time, optionally after a pause."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def stamp(when: str, pause: int) -> str:
    import time

    time.sleep(pause)
    return when


@dsl.pipeline(name="scheduled")
def scheduled(when: str = "", pause: int = 0) -> str:
    task = stamp(when=when, pause=pause)
    task.set_caching_options(False)
    return task.output
