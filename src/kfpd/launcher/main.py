"""One task, start to finish: stage inputs, fill placeholders, run, collect outputs, report."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import BinaryIO

from kfpd.launcher import outputs, process, python_components
from kfpd.launcher.logsink import LogSink
from kfpd.launcher.objectstore import (
    FsspecStore,
    ObjectStore,
    SessionStore,
    StoreError,
    file_uri_path,
)
from kfpd.launcher.placeholders import (
    LocalArtifact,
    PlaceholderError,
    Resolver,
    TaskFiles,
    resolve_parameter_references,
)
from kfpd.launcher.reporter import Reporter, ServerError, TransportError
from kfpd.schemas.launch import FinishTaskRequest, LaunchSpec

EXIT_REPORTED = 0
EXIT_BAD_SPEC = 2
EXIT_NOT_REPORTED = 3
# Set by the local executor: the launcher then explains that container images are ignored.
EXECUTOR_ENV = "KFPD_EXECUTOR"
# How long the final report is retried while the server does not answer (it may be
# restarting: a task outlives the server). KFPD_REPORT_DEADLINE (seconds) overrides it; a
# definitive refusal (4xx) ends the retries at once.
REPORT_DEADLINE = 7 * 24 * 3600.0
REPORT_DEADLINE_ENV = "KFPD_REPORT_DEADLINE"
MAX_REPORT_DELAY = 5.0  # seconds between report attempts, at most
# After a failed log chunk, streaming waits this long (doubling) before trying again, so a
# server that is away does not slow the task's output down; the text waits in the sink.
LOG_RETRY_FIRST, LOG_RETRY_MAX = 0.5, 10.0
# Where the launcher runs, as its executor tells it: JSON {key: value} (a Ray node and task
# id); a Kubernetes pod's name and uid come from the downward API (KFP_POD_NAME, KFP_POD_UID).
PLACEMENT_ENV = "KFPD_PLACEMENT"

_ssl_context: ssl.SSLContext | None = None


def prewarm() -> None:
    """Do once what launches may need (a warm worker calls this before forking)."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: .*)?$")


def user_exception(log_tail: str) -> str | None:
    """The user's exception in a log tail: the last unindented line after the last Python
    traceback (``ValueError: bad input``), else the last line that looks like one."""
    lines = log_tail.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if starts:
        after = [ln for ln in lines[starts[-1] + 1 :] if ln.strip() and not ln[0].isspace()]
        if after:
            return after[-1].strip()
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


def failure_message(what: str, log_tail: str) -> str:
    """A failed task's message: the user's exception first (what the CLI table and the UI
    banner show), then what happened to the process, then the log's last lines."""
    if not log_tail:
        return what
    cause = user_exception(log_tail)
    lead = f"{cause}\n({what})" if cause else what
    return f"{lead}; last lines of its log:\n{log_tail}"


class TaskFailure(Exception):
    """The task failed for a reason worth reporting as its error message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Launcher:
    def __init__(
        self,
        spec: LaunchSpec,
        *,
        tee: BinaryIO | None = None,
        store: ObjectStore | None = None,
        venv_root: Path | None = None,
        prefork: process.PreForked | None = None,
    ) -> None:
        self.spec = spec
        self.prefork = prefork  # a child forked ahead, ready to run kfp's executor_main
        self.tee = tee
        self.store = store or FsspecStore()
        self._granted = store is not None  # a given store needs no sessions from the server
        self.venv_root = venv_root or python_components.default_venv_root()
        self.work = Path(spec.work_dir or tempfile.mkdtemp(prefix="kfpd-task-"))
        # A warm worker made the TLS context once; otherwise https makes its own when needed.
        self.server = Reporter(spec.server_url, spec.token, ssl_context=_ssl_context)
        self._streaming = True
        # Remote artifacts but no object-store support here: the log is not uploaded either.
        self._store_missing = False
        self._log_retry_at = 0.0
        self._log_retry_delay = LOG_RETRY_FIRST

    # -- the whole task

    def run(self) -> int:
        local_log = file_uri_path(self.spec.log_uri) if self.spec.log_uri else None
        log_path = Path(local_log) if local_log else self.work / "executor-logs.log"
        self.sink = LogSink(log_path, self._send_log, tee=self.tee)
        try:
            result = self._execute()
        except TaskFailure as exc:
            result = FinishTaskRequest(state="FAILED", error_message=exc.message)
        except Exception as exc:
            self.sink.note("launcher error:\n" + traceback.format_exc().rstrip())
            result = FinishTaskRequest(
                state="FAILED", error_message=f"launcher error: {type(exc).__name__}: {exc}"
            )
        result.log_text = self.sink.close()
        result.placement = placement()
        if self.spec.log_uri:
            result.log_uri = self._store_log(log_path)
        if self.prefork is not None:
            self.prefork.discard()
        try:
            return self._report(result)
        finally:
            self.server.close()

    def _execute(self) -> FinishTaskRequest:
        self._open_sessions()
        files = self._stage()
        resolver = Resolver(files)
        container = self.spec.container
        try:
            component = python_components.parse_python_component(container.command, container.args)
            if component is not None:
                code = self._run_python(component, resolver.command_line(component.executor_args))
            else:
                code = self._run_command(
                    resolver.command_line([*container.command, *container.args])
                )
        except PlaceholderError as exc:
            raise TaskFailure(f"cannot build the command line: {exc}") from None
        if code != 0:
            raise self._failure(f"the command {process.describe_exit(code)}")
        try:
            executor_output = outputs.read_executor_output(files.output_file)
            parameters = outputs.collect_parameters(files, executor_output)
            artifacts = outputs.collect_artifacts(
                files, executor_output, self.store, self.sink.note
            )
        except (outputs.OutputError, StoreError) as exc:
            raise TaskFailure(str(exc)) from None
        return FinishTaskRequest(
            state="SUCCEEDED", output_parameters=parameters, output_artifacts=artifacts
        )

    # -- inputs and outputs on this host

    def _remote_uris(self) -> list[str]:
        spec = self.spec
        uris = [a.uri for arts in spec.input_artifacts.values() for a in arts]
        uris += [o.uri for o in spec.output_artifacts.values()]
        uris.append(spec.log_uri)
        candidates = {u for u in uris if u and file_uri_path(u) is None}
        if not candidates:
            return []  # local files only: the launcher bundle (no pydantic) stays on this path
        try:
            from kfpd.storage.launcher_config import is_remote
        except ImportError:  # the launcher bundle in an image without kfpd's storage
            self._store_missing = True
            raise TaskFailure(no_object_store_message(sorted(candidates)[0])) from None

        # Other fsspec schemes (memory://, hdfs://, ...) keep fsspec's own configuration.
        return sorted(u for u in candidates if is_remote(u))

    def _open_sessions(self) -> None:
        """Ask the server for this task's object-store sessions (memory only, never a file)."""
        uris = self._remote_uris()
        if self._granted or not uris:
            return
        try:
            granted = self.server.storage_sessions(self.spec.run_id, self.spec.task_id, uris)
        except (ServerError, TransportError) as exc:
            raise TaskFailure(f"no object-store access for this task's artifacts: {exc}") from None
        store = SessionStore([(s.protocol, s.options, s.uris) for s in granted.sessions])
        try:
            store.open_all()  # a missing s3fs/gcsfs fails the task now, not after its command
        except StoreError as exc:
            self._store_missing = True
            raise TaskFailure(str(exc)) from None
        self.store = store
        self._granted = True

    def _stage(self) -> TaskFiles:
        spec = self.spec
        spec = spec.model_copy(update={"parameter_values": resolve_parameter_references(spec)})
        self.spec = spec
        out_dir = self.work / "outputs"
        shutil.rmtree(out_dir, ignore_errors=True)
        inputs: dict[str, list[LocalArtifact]] = {}
        for key, arts in spec.input_artifacts.items():
            inputs[key] = []
            for i, art in enumerate(arts):
                path = ""
                if art.uri:
                    path = self._local_input(art.uri, self.work / "artifacts" / "in" / key / str(i))
                inputs[key].append(
                    LocalArtifact(
                        name=art.name,
                        uri=art.uri,
                        path=path,
                        schema_title=art.schema_title,
                        schema_version=art.schema_version,
                        metadata=dict(art.metadata),
                    )
                )
        outs: dict[str, LocalArtifact] = {}
        for key, out in spec.output_artifacts.items():
            path = file_uri_path(out.uri) or str(
                self.work / "artifacts" / "out" / key / _basename(out.uri, key)
            )
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            outs[key] = LocalArtifact(
                name=out.name,
                uri=out.uri,
                path=path,
                schema_title=out.schema_title,
                schema_version=out.schema_version,
                metadata=dict(out.metadata),
            )
        param_dir = out_dir / "parameters"
        param_dir.mkdir(parents=True, exist_ok=True)
        return TaskFiles(
            spec=spec,
            input_artifacts=inputs,
            output_artifacts=outs,
            parameter_files={name: str(param_dir / name) for name in spec.output_parameters},
            output_file=str(out_dir / "executor_output.json"),
        )

    def _local_input(self, uri: str, staging: Path) -> str:
        local = self.store.local_path(uri)
        if local is not None:
            return local
        dest = staging / _basename(uri, "artifact")
        try:
            self.store.download(uri, dest)
        except StoreError as exc:
            raise TaskFailure(str(exc)) from None
        return str(dest)

    # -- running

    def _task_env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("KFPD_") and k != "_KFP_RUNTIME"
        }
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update({e.name: e.value for e in self.spec.container.env})
        return env

    def _run_python(self, component: python_components.PythonComponent, args: list[str]) -> int:
        module = self.work / "component" / "ephemeral_component.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(component.source)
        env = self._task_env()
        installs = python_components.venv_installs(component)
        if not installs:
            request = python_components.executor_main_request(
                str(module), args, env, str(self.work)
            )
            prefork, self.prefork = self.prefork, None
            if prefork is not None:
                return prefork.run(request, self.sink)
            return process.run_forked(python_components.run_executor_main, request, sink=self.sink)
        try:
            python = python_components.ensure_venv(
                self.venv_root, installs, run=self._run_setup, note=self.sink.note
            )
        except python_components.VenvError as exc:
            raise self._failure(str(exc)) from None
        argv = [
            str(python),
            "-m",
            component.executor_module,
            "--component_module_path",
            str(module),
            *args,
        ]
        return process.run_command(
            argv, env={**env, "_KFP_RUNTIME": "true"}, cwd=self.work, sink=self.sink
        )

    def _run_setup(self, argv: list[str]) -> int:
        return process.run_command(argv, env=self._task_env(), cwd=self.work, sink=self.sink)

    def _run_command(self, argv: list[str]) -> int:
        if not argv:
            raise TaskFailure("the container has no command")
        env = self._task_env()
        program = argv[0]
        if program in ("python3", "python"):
            argv = [sys.executable, *argv[1:]]  # the launcher's interpreter, as kfp.local does
        elif shutil.which(program, path=env.get("PATH")) is None:
            where = "on this host"
            if os.environ.get(EXECUTOR_ENV) == "local":
                image = self.spec.container.image
                where += f" (the local executor ignores image {image!r})" if image else ""
            raise TaskFailure(f"command {program!r} not found {where}")
        return process.run_command(argv, env=env, cwd=self.work, sink=self.sink)

    def _failure(self, what: str) -> TaskFailure:
        return TaskFailure(failure_message(what, self.sink.tail()))

    # -- talking to the server

    def _send_log(self, text: str) -> bool:
        if not self._streaming:
            return True
        if time.monotonic() < self._log_retry_at:
            return False  # the server was away a moment ago: keep the text for later
        try:
            self.server.append_log(self.spec.run_id, self.spec.task_id, text)
        except ServerError as exc:
            if exc.status < 500:
                self._streaming = False  # the task ended or is gone: nobody will read more
                print(f"kfpd launcher: log streaming stopped: {exc}", file=sys.stderr)
                return True
            return self._log_not_sent()
        except TransportError:
            return self._log_not_sent()
        self._log_retry_delay = LOG_RETRY_FIRST
        return True

    def _log_not_sent(self) -> bool:
        self._log_retry_at = time.monotonic() + self._log_retry_delay
        self._log_retry_delay = min(self._log_retry_delay * 2, LOG_RETRY_MAX)
        return False

    def _store_log(self, log_path: Path) -> str | None:
        if file_uri_path(self.spec.log_uri) is not None:
            return self.spec.log_uri
        if self._store_missing:
            return None  # the server keeps the log text it was sent
        try:
            self.store.upload(log_path, self.spec.log_uri)
        except StoreError as exc:
            print(f"kfpd launcher: the log was not stored: {exc}", file=sys.stderr)
            return None
        return self.spec.log_uri

    def _report(self, result: FinishTaskRequest) -> int:
        """Deliver the result; while the server is away (restarting), keep trying."""
        deadline = time.monotonic() + report_deadline()
        delay = 0.2
        announced = False
        may_have_landed = False  # an attempt that got no answer may still have been recorded
        while True:
            try:
                self.server.finish(self.spec.run_id, self.spec.task_id, result)
                return EXIT_REPORTED
            except ServerError as exc:
                if exc.status == 409 and (may_have_landed or exc.resent):
                    # The task ends once: the earlier attempt was recorded, its reply was lost.
                    print(
                        "kfpd launcher: the task had already ended: an earlier report was "
                        "recorded but its reply was lost",
                        file=sys.stderr,
                    )
                    return EXIT_REPORTED
                if exc.status < 500:
                    print(f"kfpd launcher: the server refused the report: {exc}", file=sys.stderr)
                    return EXIT_NOT_REPORTED
                error: Exception = exc
            except TransportError as exc:
                error = exc
                may_have_landed = True
            if time.monotonic() + delay > deadline:
                print(f"kfpd launcher: could not report the task: {error}", file=sys.stderr)
                return EXIT_NOT_REPORTED
            if not announced:
                announced = True
                print(f"kfpd launcher: the server is away ({error}); retrying", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, MAX_REPORT_DELAY)


# Set by the launcher bundle's entry point: which launcher runs (recorded in the placement).
LAUNCHER_ENV = "KFPD_LAUNCHER"


def no_object_store_message(uri: str) -> str:
    """Why a task with remote artifacts cannot run here, and which image would run it."""
    from importlib import metadata

    import kfpd

    try:
        installed = metadata.version("kfpd")
    except metadata.PackageNotFoundError:
        installed = ""
    found = "the image has no kfpd"
    if installed:
        found = f"the image has kfpd {installed}, not the server's {kfpd.__version__}"
    return (
        f"artifacts at {uri!r} need kfpd's object-store support in the task's image "
        f"(pip install 'kfpd[s3]=={kfpd.__version__}', or build the image from "
        f"deploy/Dockerfile --target task): {found}, and the launcher bundle handles only "
        "file:// artifacts"
    )


def report_deadline() -> float:
    """Seconds the final report is retried: ``KFPD_REPORT_DEADLINE`` or a week."""
    try:
        return float(os.environ.get(REPORT_DEADLINE_ENV) or REPORT_DEADLINE)
    except ValueError:
        return REPORT_DEADLINE


def placement() -> dict[str, str]:
    """Where this launcher runs, from its executor's environment (empty when it says nothing)."""
    found: dict[str, str] = {}
    try:
        given = json.loads(os.environ.get(PLACEMENT_ENV) or "{}")
    except ValueError:
        given = {}
    if isinstance(given, dict):
        found.update({str(k): str(v) for k, v in given.items()})
    if os.environ.get(LAUNCHER_ENV):
        found["launcher"] = os.environ[LAUNCHER_ENV]
    for key, env in (("pod_name", "KFP_POD_NAME"), ("pod_uid", "KFP_POD_UID")):
        if os.environ.get(env):
            found[key] = os.environ[env]
    if os.environ.get(EXECUTOR_ENV) == "local" and "pod_name" not in found:
        # No pod: say what ran the task, instead of the pod name upstream would show.
        found["pod_name"] = f"local process {os.getpid()} on {socket.gethostname()}"
    return found


def _basename(uri: str, fallback: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1] or fallback


def main(argv: list[str] | None = None, *, prefork: process.PreForked | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kfpd.launcher", description="Run one kfpd container task."
    )
    parser.add_argument("--spec", help="the LaunchSpec JSON file (default: read it from stdin)")
    parser.add_argument("--tee", action="store_true", help="copy the task's log to stdout too")
    args = parser.parse_args(argv)
    try:
        raw = Path(args.spec).read_text() if args.spec else sys.stdin.read()
        spec = LaunchSpec.model_validate_json(raw)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"kfpd launcher: cannot read the launch spec: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    tee = sys.stdout.buffer if args.tee else None
    try:
        launcher = Launcher(spec, tee=tee, prefork=prefork)
    except ValueError as exc:
        print(f"kfpd launcher: bad launch spec: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    return launcher.run()
