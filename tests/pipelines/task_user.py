"""A task that tries to read the server's run-token key (and writes an artifact)."""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def read_key(key_path: str, data: dsl.Output[dsl.Dataset]) -> str:
    import errno
    import os

    with open(data.path, "w") as f:
        f.write(f"uid {os.getuid()}")
    try:
        with open(key_path, "rb") as f:
            f.read()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "read"


@dsl.pipeline(name="read-the-key")
def read_the_key(key_path: str) -> str:
    return read_key(key_path=key_path).set_caching_options(False).outputs["Output"]
