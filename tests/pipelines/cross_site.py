"""Pipelines whose only task runs a shell command (what a cross-site attacker would send; what
a task can see of the server)."""

from kfp import dsl


@dsl.container_component
def touch(path: str) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image="alpine:3.19", command=["sh", "-c", 'touch "$0"', path])


@dsl.pipeline(name="touch-a-file")
def touch_pipeline(path: str) -> None:
    touch(path=path)


@dsl.container_component
def dump_environment(out: dsl.Output[dsl.Dataset]) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(
        image="alpine:3.19", command=["sh", "-c", 'env > "$0"; echo environment written', out.path]
    )


@dsl.pipeline(name="dump-environment")
def env_pipeline() -> None:
    dump_environment()


@dsl.container_component
def chatty(lines: int) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image="alpine:3.19", command=["seq", "1", lines])


@dsl.pipeline(name="chatty")
def chatty_pipeline(lines: int = 400000) -> None:
    chatty(lines=lines)
