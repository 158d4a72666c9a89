"""A pipeline whose only task runs a shell command: what a cross-site attacker would send."""

from kfp import dsl


@dsl.container_component
def touch(path: str) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image="alpine:3.19", command=["sh", "-c", 'touch "$0"', path])


@dsl.pipeline(name="touch-a-file")
def touch_pipeline(path: str) -> None:
    touch(path=path)
