"""Launcher parts that need no server: recognising lightweight components, reading outputs,
the object store, the log store and run tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import pytest

from kfpd.domain.errors import InvalidArgument
from kfpd.domain.tokens import issue_run_token, token_run_id, verify_run_token
from kfpd.launcher import outputs, python_components
from kfpd.launcher.objectstore import FsspecStore, StoreError, file_uri_path
from kfpd.launcher.placeholders import LocalArtifact, TaskFiles
from kfpd.launcher.python_components import PipInstall, parse_python_component, venv_installs
from kfpd.schemas.launch import ContainerSpec, LaunchSpec
from kfpd.services.logstore import LogStore
from tests.launching import compile_component
from tests.pipelines import launch_components as comps


def _container(component: Any) -> dict[str, Any]:
    ir = compile_component(component)
    [executor] = ir["deploymentSpec"]["executors"].values()
    container: dict[str, Any] = executor["container"]
    return container


# ---------------------------------------------------------------- lightweight components


def test_a_compiled_lightweight_component_is_recognised() -> None:
    container = _container(comps.add_one)
    component = parse_python_component(container["command"], container["args"])
    assert component is not None
    assert "def add_one(x: int) -> int:" in component.source
    assert component.executor_module == "kfp.dsl.executor_main"
    assert component.executor_args == [
        "--executor_input",
        "{{$}}",
        "--function_to_execute",
        "add_one",
    ]
    [kfp_line] = component.installs
    assert kfp_line.requirements[0].startswith("kfp==")
    assert venv_installs(component) == ()  # the installed kfp serves it: fast path


def test_packages_to_install_need_a_virtualenv() -> None:
    container = _container(
        comps.with_packages(["six==1.16.0", "toolz>=0.12"], ["https://example.org/simple"])
    )
    component = parse_python_component(container["command"], container["args"])
    assert component is not None
    assert venv_installs(component) == (
        PipInstall(
            options=(
                "--index-url",
                "https://example.org/simple",
                "--trusted-host",
                "https://example.org/simple",
            ),
            requirements=("six==1.16.0", "toolz>=0.12"),
        ),
    )


def test_a_kfp_of_another_major_version_goes_into_the_virtualenv() -> None:
    container = _container(comps.add_one)
    command = [c.replace("'kfp==2.", "'kfp==1.") for c in container["command"]]
    component = parse_python_component(command, container["args"])
    assert component is not None
    [install] = venv_installs(component)
    assert install.requirements[0].startswith("kfp==1.")


@pytest.mark.parametrize(
    "command",
    [
        ["sh", "-c", "echo hi"],
        ["python3", "-m", "kfp.dsl.executor_main"],
        # A prelude doing more than installing packages is run as written.
        ["sh", "-c", 'apt-get install -y curl && "$0" "$@"\n', "sh", "-ec", "x", "y"],
    ],
)
def test_other_commands_are_not_lightweight_components(command: list[str]) -> None:
    assert parse_python_component(command, []) is None


def test_a_component_without_prelude_is_recognised() -> None:
    container = _container(comps.add_one)
    command = container["command"][3:]  # sh -ec <program> <source>
    component = parse_python_component(command, container["args"])
    assert component is not None and component.installs == ()


def test_requirement_set_key_ignores_order_and_changes_with_content() -> None:
    a = (PipInstall((), ("b", "a")),)
    b = (PipInstall((), ("a", "b")),)
    c = (PipInstall((), ("a", "c")),)
    key = python_components.requirement_set_key
    assert key(a) == key(b) != key(c)


def test_requirement_set_key_changes_with_where_the_host_kfp_lives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A virtualenv imports the host's kfp through a .pth naming its site directory: another
    # kfpd installation (another site) must get its own virtualenv, not one linked elsewhere.
    installs = (PipInstall((), ("a",)),)
    here = python_components.requirement_set_key(installs)
    monkeypatch.setattr(python_components, "_host_kfp_site", lambda: tmp_path / "site-packages")
    elsewhere = python_components.requirement_set_key(installs)
    assert here != elsewhere


# ---------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    ("text", "ptype", "value"),
    [
        ("hello\n", "STRING", "hello\n"),
        ("7\n", "NUMBER_INTEGER", 7),
        ("7.0", "NUMBER_INTEGER", 7),
        ("0.5", "NUMBER_DOUBLE", 0.5),
        ("True", "BOOLEAN", True),
        ("false\n", "BOOLEAN", False),
        ("[1, 2]", "LIST", [1, 2]),
        ('{"a": 1}', "STRUCT", {"a": 1}),
    ],
)
def test_parameter_files_are_parsed_by_type(text: str, ptype: str, value: Any) -> None:
    assert outputs.parse_parameter_text(text, ptype) == value


@pytest.mark.parametrize(
    ("text", "ptype"),
    [("7.5", "NUMBER_INTEGER"), ("x", "NUMBER_DOUBLE"), ("yes", "BOOLEAN"), ("{}", "LIST")],
)
def test_bad_parameter_files_are_errors(text: str, ptype: str) -> None:
    with pytest.raises(ValueError):
        outputs.parse_parameter_text(text, ptype)


def _files(tmp_path: Path, title: str = "system.Metrics", **params: str) -> TaskFiles:
    spec = LaunchSpec(
        server_url="http://x",
        token="t",
        run_id="r",
        task_id="t",
        task_name="n",
        pipeline_root="file:///p",
        container=ContainerSpec(),
        output_parameters=params,
    )
    art = LocalArtifact("out", f"file://{tmp_path}/out", str(tmp_path / "out"), title)
    return TaskFiles(
        spec=spec,
        input_artifacts={},
        output_artifacts={"out": art},
        parameter_files={k: str(tmp_path / k) for k in params},
        output_file=str(tmp_path / "executor_output.json"),
    )


def test_metrics_become_one_artifact_per_scalar(tmp_path: Path) -> None:
    files = _files(tmp_path)
    eo = {"artifacts": {"out": {"artifacts": [{"metadata": {"acc": 0.9, "n": 3}}]}}}
    arts = outputs.collect_artifacts(files, eo, FsspecStore(), lambda _: None)
    assert [(a.name, a.number_value, a.metadata, a.uri) for a in arts] == [
        ("acc", 0.9, {"acc": 0.9}, None),
        ("n", 3.0, {"n": 3}, None),
    ]


def test_a_non_numeric_metric_is_an_error(tmp_path: Path) -> None:
    eo = {"artifacts": {"out": {"artifacts": [{"metadata": {"acc": "high"}}]}}}
    with pytest.raises(outputs.OutputError, match="not a number"):
        outputs.collect_artifacts(_files(tmp_path), eo, FsspecStore(), lambda _: None)


def test_output_parameters_prefer_the_executor_output(tmp_path: Path) -> None:
    files = _files(tmp_path, a="NUMBER_INTEGER", b="STRING", c="NUMBER_INTEGER")
    (tmp_path / "a").write_text("1")
    (tmp_path / "b").write_text("from file")
    eo = {"parameterValues": {"a": 2.0}, "parameters": {"c": {"intValue": "5"}}}
    assert outputs.collect_parameters(files, eo) == {"a": 2, "b": "from file", "c": 5}


def test_a_missing_output_parameter_is_an_error(tmp_path: Path) -> None:
    files = _files(tmp_path, a="STRING")
    with pytest.raises(outputs.OutputError, match="'a' was not produced"):
        outputs.collect_parameters(files, {})


def test_an_unwritten_artifact_is_only_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    arts = outputs.collect_artifacts(
        _files(tmp_path, "system.Dataset"), {}, FsspecStore(), warnings.append
    )
    assert arts[0].uri == f"file://{tmp_path}/out"
    assert "was not written" in warnings[0]


def test_an_artifact_written_elsewhere_is_copied_to_its_uri(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("payload")
    eo = {"artifacts": {"out": {"artifacts": [{"uri": str(tmp_path / "elsewhere")}]}}}
    arts = outputs.collect_artifacts(
        _files(tmp_path, "system.Dataset"), eo, FsspecStore(), lambda _: None
    )
    assert arts[0].uri == f"file://{tmp_path}/out"
    assert (tmp_path / "out").read_text() == "payload"


def test_invalid_executor_output_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "eo.json"
    path.write_text("{not json")
    with pytest.raises(outputs.OutputError, match="not valid JSON"):
        outputs.read_executor_output(str(path))
    assert outputs.read_executor_output(str(tmp_path / "absent.json")) == {}


# ---------------------------------------------------------------- object store


def test_file_uris_are_local_paths() -> None:
    assert file_uri_path("file:///a/b%20c") == "/a/b c"
    assert file_uri_path("/a/b") == "/a/b"
    assert file_uri_path("s3://bucket/a") is None
    assert file_uri_path("file://otherhost/a") is None


def test_remote_files_and_directories_go_through_fsspec(tmp_path: Path) -> None:
    store = FsspecStore()
    fs = fsspec.filesystem("memory")
    fs.pipe("/kfpd-test/in/file.txt", b"one")
    fs.pipe("/kfpd-test/in/dir/a.txt", b"a")
    fs.pipe("/kfpd-test/in/dir/sub/b.txt", b"b")
    try:
        store.download("memory://kfpd-test/in/file.txt", tmp_path / "f.txt")
        assert (tmp_path / "f.txt").read_text() == "one"
        store.download("memory://kfpd-test/in/dir", tmp_path / "d")
        assert (tmp_path / "d" / "a.txt").read_text() == "a"
        assert (tmp_path / "d" / "sub" / "b.txt").read_text() == "b"
        store.upload(tmp_path / "d", "memory://kfpd-test/out/dir")
        assert fs.cat("/kfpd-test/out/dir/sub/b.txt") == b"b"
        store.upload(tmp_path / "f.txt", "memory://kfpd-test/out/f.txt")
        assert fs.cat("/kfpd-test/out/f.txt") == b"one"
        with pytest.raises(StoreError, match="does not exist"):
            store.download("memory://kfpd-test/nothing", tmp_path / "x")
        with pytest.raises(StoreError, match="no storage backend"):
            store.download("nosuchscheme://x/y", tmp_path / "y")
    finally:
        fs.rm("/kfpd-test", recursive=True)


# ---------------------------------------------------------------- log store and tokens


def test_log_store_reads_by_byte_offset_without_splitting_characters(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append("r", "t", "héllo ")
    store.append("r", "t", "wörld\n")
    text, offset = store.read("r", "t", 0, 2)  # "h" + half of "é"
    assert (text, offset) == ("h", 1)
    text, offset = store.read("r", "t", offset, 100)
    assert text == "éllo wörld\n"
    assert store.read("r", "t", offset, 100) == ("", offset)
    assert store.read("r", "absent", 0, None) == ("", 0)
    with pytest.raises(InvalidArgument):
        store.read("r", "t", -1, None)
    with pytest.raises(InvalidArgument):
        store.read("r", "t", 0, 0)


def test_run_tokens() -> None:
    secret = b"s" * 32
    token = issue_run_token(secret, "run-1")
    assert verify_run_token(secret, token, "run-1")
    assert not verify_run_token(secret, token, "run-2")
    assert not verify_run_token(b"o" * 32, token, "run-1")
    assert token_run_id(secret, token) == "run-1"
    assert token_run_id(secret, "run-1.forged") is None
    assert token_run_id(secret, "garbage") is None
    assert token_run_id(secret, token.replace("run-1", "run-2")) is None
    assert json.dumps(token)  # plain text, fit for a header
    # An expiry inside the signed text: a token stops working, and cannot be prolonged.
    short = issue_run_token(secret, "run-1", ttl=60, now=1000)
    assert token_run_id(secret, short, now=1059) == "run-1"
    assert token_run_id(secret, short, now=1060) is None
    run_id, expires, signature = short.rsplit(".", 2)
    assert token_run_id(secret, f"{run_id}.{int(expires) + 999}.{signature}", now=1059) is None
    assert token_run_id(secret, issue_run_token(secret, "a.b.c"), now=1) == "a.b.c"


def test_reporter_errors() -> None:
    import socket

    from kfpd.launcher.reporter import Reporter, TransportError
    from kfpd.schemas.launch import FinishTaskRequest

    with pytest.raises(ValueError, match="http"):
        Reporter("ftp://host", "t")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    reporter = Reporter(f"http://127.0.0.1:{port}", "t", timeout=2)
    with pytest.raises(TransportError):
        reporter.finish("r", "t", FinishTaskRequest(state="SUCCEEDED"))
    with pytest.raises(TransportError):
        reporter.append_log("r", "t", "x")


def test_failure_message_leads_with_the_users_exception() -> None:
    from kfpd.launcher.main import failure_message, user_exception

    tail = (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main\n'
        "    return _run_code(code, main_globals, None,\n"
        '  File "/tmp/ephemeral_component.py", line 9, in fail_op\n'
        "    raise ValueError(message)\n"
        "ValueError: kaboom-42"
    )
    message = failure_message("the command exited with code 1", tail)
    assert message.splitlines()[0] == "ValueError: kaboom-42"
    assert message.splitlines()[1].startswith("(the command exited with code 1)")
    assert tail in message
    # Chained tracebacks: the last one's exception is the one that ended the task.
    chained = tail + "\n\nDuring handling of the above exception, another exception occurred:\n\n"
    chained += 'Traceback (most recent call last):\n  File "x.py", line 1\nmypkg.errors.DataMissing: no rows'
    assert user_exception(chained) == "mypkg.errors.DataMissing: no rows"
    # No traceback: a line that looks like an exception, else the process outcome leads.
    assert (
        user_exception("loading\nRuntimeError: CUDA missing\nbye") == "RuntimeError: CUDA missing"
    )
    plain = failure_message("the command exited with code 3", "just output\nmore output")
    assert plain.startswith("the command exited with code 3; last lines of its log:")
    assert failure_message("killed", "") == "killed"


def test_local_tasks_name_their_process_not_a_made_up_pod(monkeypatch: Any) -> None:
    import os
    import socket

    from kfpd.launcher.main import EXECUTOR_ENV, PLACEMENT_ENV, placement

    monkeypatch.delenv(PLACEMENT_ENV, raising=False)
    monkeypatch.delenv("KFP_POD_NAME", raising=False)
    monkeypatch.setenv(EXECUTOR_ENV, "local")
    assert placement() == {"pod_name": f"local process {os.getpid()} on {socket.gethostname()}"}
    monkeypatch.setenv("KFP_POD_NAME", "real-pod-1")  # a real pod keeps its name
    assert placement()["pod_name"] == "real-pod-1"
    monkeypatch.setenv(EXECUTOR_ENV, "ray")
    monkeypatch.delenv("KFP_POD_NAME")
    assert "pod_name" not in placement()


def test_a_missing_object_store_backend_is_found_before_the_task_runs() -> None:
    """gcsfs is not installed here: opening the granted gs:// session fails at once, naming
    the extra to install (the launcher then fails the task before its command)."""
    from kfpd.launcher.objectstore import SessionStore

    store = SessionStore([("gcs", {"project": "p"}, ["gs://bucket/a", "gs://bucket/b"])])
    with pytest.raises(StoreError, match=r"pip install 'kfpd\[gcs\]'"):
        store.open_all()
    SessionStore([("memory", {}, ["memory://x/y"])]).open_all()  # an installed backend: fine
