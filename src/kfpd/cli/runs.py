"""``kfpd run`` and ``kfpd runs list|get|logs``: submit and follow runs over the REST API."""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from kfpd.client.http import KfpdApiError, KfpdClient
from kfpd.domain.errors import InvalidArgument
from kfpd.domain.timeutil import parse_rfc3339
from kfpd.ir import root_parameter_definitions
from kfpd.schemas.runs import Run, RunCreate
from kfpd.schemas.tasks import PipelineTask
from kfpd.spec.loader import load_package

console = Console()
runs_app = typer.Typer(help="List, inspect and follow runs.", no_args_is_help=True)

Host = Annotated[
    str,
    typer.Option("--host", envvar="KFPD_HOST", help="kfpd server URL (env KFPD_HOST)."),
]
DEFAULT_HOST = "http://127.0.0.1:8888"
FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
STATE_STYLE = {
    "SUCCEEDED": "green",
    "CACHED": "cyan",
    "RUNNING": "yellow",
    "FAILED": "bold red",
    "CANCELED": "magenta",
    "SKIPPED": "dim",
}


# ---------------------------------------------------------------------------- pipelines


def _pipeline_functions(module: Any) -> dict[str, Any]:
    from kfp.dsl.graph_component import GraphComponent

    return {n: v for n, v in vars(module).items() if isinstance(v, GraphComponent)}


def compile_python(path: Path, function: str | None) -> dict[str, Any]:
    """Import a .py file and compile its pipeline function with the kfp SDK."""
    from kfp import compiler

    spec = importlib.util.spec_from_file_location(f"kfpd_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise typer.BadParameter(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    found = _pipeline_functions(module)
    if function:
        if function not in found:
            raise typer.BadParameter(f"{path} has no pipeline {function!r}; found {sorted(found)}")
        chosen = found[function]
    elif len(found) == 1:
        chosen = next(iter(found.values()))
    else:
        raise typer.BadParameter(
            f"{path} defines {len(found)} pipelines {sorted(found)}; pick one with --function"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(chosen, str(out))
        return load_spec_file(out)


def load_spec_file(path: Path) -> dict[str, Any]:
    try:
        loaded = load_package(path.read_bytes(), path.name)
    except InvalidArgument as exc:
        raise typer.BadParameter(str(exc)) from exc
    if loaded.platform_spec:
        return {"pipeline_spec": loaded.pipeline_spec, "platform_spec": loaded.platform_spec}
    return loaded.pipeline_spec


def parse_parameters(pairs: list[str], spec: dict[str, Any]) -> dict[str, Any]:
    """``name=value`` pairs, converted to the types the pipeline declares."""
    definitions = root_parameter_definitions(spec.get("pipeline_spec", spec))
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"parameters are name=value, got {pair!r}")
        if name not in definitions:
            raise typer.BadParameter(
                f"unknown parameter {name!r}; the pipeline takes {sorted(definitions)}"
            )
        declared = definitions[name].parameter_type
        ptype = "STRING" if declared is None else declared
        try:
            if ptype == "STRING":
                values[name] = raw
            elif ptype == "NUMBER_INTEGER":
                values[name] = int(raw)
            elif ptype == "NUMBER_DOUBLE":
                values[name] = float(raw)
            elif ptype == "BOOLEAN":
                if raw.lower() not in {"true", "false"}:
                    raise ValueError(raw)
                values[name] = raw.lower() == "true"
            else:
                values[name] = json.loads(raw)
        except ValueError as exc:
            raise typer.BadParameter(f"parameter {name!r} must be {ptype}: {exc}") from exc
    return values


def _experiment_id(client: KfpdClient, name: str) -> str:
    flt = json.dumps(
        {"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]}
    )
    found = client.list_experiments(filter=flt, page_size=1).experiments
    if found:
        return found[0].experiment_id or ""
    return client.create_experiment(name).experiment_id or ""


# ---------------------------------------------------------------------------- display


def _state(value: Any) -> str:
    return value.name if value is not None else ""


def _duration(start: str | None, end: str | None) -> str:
    if not start:
        return ""
    begin = parse_rfc3339(start)
    finish = parse_rfc3339(end) if end else int(time.time() * 1_000_000)
    return f"{max(finish - begin, 0) / 1e6:.1f}s"


def task_table(run: Run) -> Table:
    state = _state(run.state)
    table = Table(title=f"{run.display_name} [{STATE_STYLE.get(state, '')}]{state}[/]")
    for column in ("task", "type", "state", "duration", "message"):
        table.add_column(column)
    tasks = run.tasks or []
    children: dict[str | None, list[PipelineTask]] = {}
    for task in tasks:
        children.setdefault(task.parent_task_id, []).append(task)

    def add(task: PipelineTask, depth: int) -> None:
        s = _state(task.state)
        label = task.display_name or task.name or ""
        if task.type_attributes and task.type_attributes.iteration_index is not None:
            label = f"{task.name} #{task.type_attributes.iteration_index}"
        message = (task.status_metadata.message if task.status_metadata else None) or ""
        table.add_row(
            "  " * depth + label,
            _state(task.type),
            f"[{STATE_STYLE.get(s, '')}]{s}[/]",
            _duration(task.create_time, task.end_time),
            message[:80],
        )
        for child in children.get(task.task_id, []):
            add(child, depth + 1)

    ids = {t.task_id for t in tasks}
    for task in tasks:
        if task.parent_task_id is None or task.parent_task_id not in ids:
            add(task, 0)
    return table


def follow(client: KfpdClient, run_id: str, interval: float = 0.5) -> Run:
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            run = client.get_run(run_id, full=True)
            live.update(task_table(run))
            if _state(run.state) in FINAL:
                return run
            time.sleep(interval)


# ---------------------------------------------------------------------------- commands


def run(
    pipeline: Annotated[Path, typer.Argument(help="A pipeline .py file or compiled .yaml/.json.")],
    parameter: Annotated[
        list[str] | None, typer.Option("-p", "--parameter", help="name=value (repeatable).")
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment name.")] = None,
    name: Annotated[str | None, typer.Option(help="Run display name.")] = None,
    function: Annotated[str | None, typer.Option(help="Pipeline function in a .py file.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = False,
    host: Host = DEFAULT_HOST,
) -> None:
    """Submit a pipeline run (compiling .py files with the kfp SDK)."""
    if not pipeline.exists():
        raise typer.BadParameter(f"{pipeline} does not exist")
    if pipeline.suffix == ".py":
        spec = compile_python(pipeline, function)
    else:
        spec = load_spec_file(pipeline)
    values = parse_parameters(parameter or [], spec)
    with KfpdClient(host) as client:
        try:
            body = RunCreate(
                display_name=name or pipeline.stem,
                pipeline_spec=spec,
                runtime_config={"parameters": values},
                experiment_id=_experiment_id(client, experiment) if experiment else None,
            )
            created = client.create_run(body)
        except KfpdApiError as exc:
            console.print(f"[red]rejected ({exc.status}):[/] {exc.message}")
            raise typer.Exit(2) from None
        run_id = created.run_id or ""
        console.print(f"run [bold]{run_id}[/] submitted to {host}")
        if not wait:
            return
        final = follow(client, run_id)
    state = _state(final.state)
    if state != "SUCCEEDED":
        message = (final.error or {}).get("message", "") if isinstance(final.error, dict) else ""
        console.print(f"[red]run {state}[/] {message}")
        raise typer.Exit(1)
    console.print(f"[green]run {state}[/]")


@runs_app.command("list")
def list_runs(
    experiment: Annotated[str | None, typer.Option(help="Experiment id.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
    host: Host = DEFAULT_HOST,
) -> None:
    """The newest runs."""
    params: dict[str, Any] = {"page_size": limit, "sort_by": "created_at desc"}
    if experiment:
        params["experiment_id"] = experiment
    with KfpdClient(host) as client:
        page = client.list_runs(**params)
    table = Table()
    for column in ("run id", "name", "state", "created", "duration"):
        table.add_column(column)
    for r in page.runs:
        s = _state(r.state)
        table.add_row(
            r.run_id or "",
            r.display_name or "",
            f"[{STATE_STYLE.get(s, '')}]{s}[/]",
            r.created_at or "",
            _duration(r.created_at, r.finished_at) if s in FINAL else "",
        )
    console.print(table)


def _run_or_exit(client: KfpdClient, run_id: str) -> Run:
    """The run with its tasks; an unknown id ends the command with the server's message."""
    try:
        return client.get_run(run_id, full=True)
    except KfpdApiError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(1) from None


@runs_app.command("delete")
def delete_run(
    run_id: str,
    artifacts: Annotated[
        bool,
        typer.Option(
            "--artifacts", help="Also delete the objects of the artifacts the run produced."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what --artifacts would delete.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
    host: Host = DEFAULT_HOST,
) -> None:
    """Delete a run; with --artifacts, list its artifact objects first, then delete them too."""
    if dry_run and not artifacts:
        console.print("[red]--dry-run lists what --artifacts would delete: add --artifacts[/]")
        raise typer.Exit(2)
    with KfpdClient(host) as client:
        try:
            if artifacts:
                plan = client.delete_run(run_id, delete_artifacts=True, dry_run=True)
                for uri in plan.artifact_objects or []:
                    console.print(f"delete {uri}", soft_wrap=True, markup=False)
                for kept in plan.kept or []:
                    line = f"keep   {kept.get('uri')} ({kept.get('reason')})"
                    console.print(line, soft_wrap=True, markup=False)
                if dry_run:
                    return
                if not yes and not typer.confirm(f"Delete run {run_id} and these objects?"):
                    raise typer.Exit(1)
            done = client.delete_run(run_id, delete_artifacts=artifacts)
        except KfpdApiError as exc:
            console.print(f"[red]{exc.message}[/]")
            raise typer.Exit(1) from None
    for error in done.errors or []:
        console.print(f"[red]not deleted: {error.get('uri')}: {error.get('error')}[/]")
    console.print(f"deleted run {run_id}")
    if done.errors:
        raise typer.Exit(1)


@runs_app.command("get")
def get_run(run_id: str, host: Host = DEFAULT_HOST) -> None:
    """A run with its task tree."""
    with KfpdClient(host) as client:
        found = _run_or_exit(client, run_id)
    console.print(task_table(found))


@runs_app.command("logs")
def logs(
    run_id: str,
    task: Annotated[
        str | None, typer.Option(help="Task name (default: every container task).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Tail until it ends.")] = False,
    host: Host = DEFAULT_HOST,
) -> None:
    """Print task logs (container tasks), optionally following a running one."""
    with KfpdClient(host) as client:
        found = _run_or_exit(client, run_id)
        tasks = [
            t
            for t in found.tasks or []
            if _state(t.type) == "RUNTIME" and (task is None or t.name == task)
        ]
        if not tasks:
            console.print(f"[red]no container task {task or ''} in run {run_id}[/]")
            raise typer.Exit(1)
        for t in tasks:
            if len(tasks) > 1:
                label = t.name or ""
                if t.type_attributes and t.type_attributes.iteration_index is not None:
                    label += f" #{t.type_attributes.iteration_index}"
                console.rule(label)
            offset = 0
            while True:
                chunk = client.read_log(run_id, t.task_id or "", offset)
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                offset = chunk.next_offset
                if chunk.complete or not follow:
                    break
                if not chunk.text:
                    time.sleep(0.5)
