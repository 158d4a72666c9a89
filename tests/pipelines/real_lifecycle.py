"""Pipelines whose components keep state in a file, for retry and restart tests with real
processes: the first attempt fails (or hangs), the next one succeeds."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def fail_once(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails on purpose")
    return "second attempt"


@dsl.pipeline(name="fail-once")
def retry_once(marker: str) -> str:
    task = fail_once(marker=marker).set_caching_options(False)
    task.set_retry(num_retries=2, backoff_duration="0s", backoff_factor=1.0)
    return task.output


@dsl.component(base_image="python:3.11")
def hang_once(marker: str) -> str:
    import os
    import time

    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(120)  # the server goes away meanwhile
    return "resumed"


@dsl.component(base_image="python:3.11")
def first_step() -> str:
    return "first"


@dsl.pipeline(name="restartable")
def restartable(marker: str) -> str:
    first = first_step().set_caching_options(False)
    task = hang_once(marker=marker).set_caching_options(False).after(first)
    task.set_retry(num_retries=1, backoff_duration="0s")
    return task.output
