"""Placeholder substitution and the ExecutorInput the launcher builds (no server needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kfpd.launcher.placeholders import (
    LocalArtifact,
    PlaceholderError,
    Resolver,
    TaskFiles,
    resolve_parameter_references,
)
from kfpd.schemas.launch import ContainerSpec, LaunchSpec


def _spec(**overrides: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "server_url": "http://127.0.0.1:1",
        "token": "t",
        "run_id": "run-1",
        "task_id": "task-1",
        "task_name": "my-task",
        "pipeline_name": "pipe",
        "run_display_name": "my run",
        "run_create_time": "2026-01-02T03:04:05Z",
        "pipeline_root": "file:///root",
        "container": ContainerSpec(image="python:3.11"),
        "parameter_values": {
            "text": "hello world",
            "n": 3,
            "ratio": 0.5,
            "flag": True,
            "items": [1, "a"],
            "conf": {"k": "v"},
            "empty": "",
        },
        "output_parameters": {"out_param": "STRING"},
    }
    fields.update(overrides)
    return LaunchSpec(**fields)


def _files(spec: LaunchSpec | None = None) -> TaskFiles:
    spec = spec or _spec()
    return TaskFiles(
        spec=spec,
        input_artifacts={
            "data": [
                LocalArtifact(
                    name="data",
                    uri="s3://bucket/data",
                    path="/work/in/data",
                    schema_title="system.Dataset",
                    metadata={"rows": 2, "kind": "csv"},
                ),
                LocalArtifact(name="data2", uri="s3://bucket/data2", path="/work/in/data2"),
            ]
        },
        output_artifacts={
            "model": LocalArtifact(
                name="model",
                uri="file:///root/model",
                path="/root/model",
                schema_title="system.Model",
                metadata={"framework": "x"},
            )
        },
        parameter_files={"out_param": "/work/outputs/parameters/out_param"},
        output_file="/work/outputs/executor_output.json",
    )


SCALARS = [
    ("{{$.inputs.parameters['text']}}", "hello world"),
    ('{{$.inputs.parameters["text"]}}', "hello world"),
    ("{{$.inputs.parameters['n']}}", "3"),
    ("{{$.inputs.parameters['ratio']}}", "0.5"),
    ("{{$.inputs.parameters['flag']}}", "true"),
    ("{{$.inputs.parameters['items']}}", '[1,"a"]'),
    ("{{$.inputs.parameters['conf']}}", '{"k":"v"}'),
    ("{{$.inputs.parameters['empty']}}", ""),
    ("x={{$.inputs.parameters['n']}}/{{$.inputs.parameters['text']}}!", "x=3/hello world!"),
    ("{{$.inputs.artifacts['data'].path}}", "/work/in/data"),
    ("{{$.inputs.artifacts['data'].uri}}", "s3://bucket/data"),
    ("{{$.inputs.artifacts['data'].metadata}}", '{"rows":2,"kind":"csv"}'),
    ("{{$.inputs.artifacts['data'].metadata['rows']}}", "2"),
    ("{{$.inputs.artifacts['data'].metadata['kind']}}", "csv"),
    ("{{$.outputs.artifacts['model'].path}}", "/root/model"),
    ("{{$.outputs.artifacts['model'].uri}}", "file:///root/model"),
    ("{{$.outputs.artifacts['model'].metadata['framework']}}", "x"),
    ("{{$.outputs.parameters['out_param'].output_file}}", "/work/outputs/parameters/out_param"),
    ("{{$.outputs.output_file}}", "/work/outputs/executor_output.json"),
    ("{{$.outputMetadataUri}}", "/work/outputs/executor_output.json"),
    ("{{$.pipeline_root}}", "file:///root"),
    ("{{$.pipeline_job_name}}", "my run"),
    ("{{$.pipeline_job_resource_name}}", "run-1"),
    ("{{$.pipeline_job_uuid}}", "run-1"),
    ("{{$.pipeline_job_create_time_utc}}", "2026-01-02T03:04:05Z"),
    ("{{$.pipeline_job_schedule_time_utc}}", "2026-01-02T03:04:05Z"),
    ("{{$.pipeline_task_name}}", "my-task"),
    ("{{$.pipeline_task_uuid}}", "task-1"),
    ("no placeholder", "no placeholder"),
]


@pytest.mark.parametrize(("item", "expected"), SCALARS)
def test_scalar_placeholders(item: str, expected: str) -> None:
    assert Resolver(_files()).command_line([item]) == [expected]


def test_artifact_list_placeholder_is_the_list_as_json() -> None:
    [text] = Resolver(_files()).command_line(["{{$.inputs.artifacts['data']}}"])
    listed = json.loads(text)["artifacts"]
    assert [a["name"] for a in listed] == ["data", "data2"]
    assert listed[0]["uri"] == "/work/in/data"  # the local path, as the ExecutorInput has it
    assert listed[0]["type"] == {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}


def test_executor_input_placeholder() -> None:
    files = _files()
    [text] = Resolver(files).command_line(["{{$}}"])
    ei = json.loads(text)
    assert ei == files.executor_input()
    assert ei["inputs"]["parameterValues"]["n"] == 3 and isinstance(
        ei["inputs"]["parameterValues"]["n"], int
    )
    assert ei["inputs"]["artifacts"]["data"]["artifacts"][0] == {
        "name": "data",
        "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
        "uri": "/work/in/data",
        "metadata": {"rows": 2, "kind": "csv"},
    }
    assert ei["outputs"] == {
        "parameters": {"out_param": {"outputFile": "/work/outputs/parameters/out_param"}},
        "artifacts": {
            "model": {
                "artifacts": [
                    {
                        "name": "model",
                        "type": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"},
                        "uri": "/root/model",
                        "metadata": {"framework": "x"},
                    }
                ]
            }
        },
        "outputFile": "/work/outputs/executor_output.json",
    }


def _concat(*items: Any) -> str:
    return json.dumps({"Concat": list(items)})


def _if_present(name: str, then: Any, else_: Any = None) -> str:
    body: dict[str, Any] = {"InputName": name, "Then": then}
    if else_ is not None:
        body["Else"] = else_
    return json.dumps({"IfPresent": body})


STRUCTURES = [
    (_concat("--n=", "{{$.inputs.parameters['n']}}"), ["--n=3"]),
    (_concat("a", _concat("b", "c"), "d"), ["abcd"]),
    # IfPresent at argument level expands to several arguments, or none.
    (_if_present("text", ["--text", "{{$.inputs.parameters['text']}}"]), ["--text", "hello world"]),
    (_if_present("missing", ["--x", "y"]), []),
    (_if_present("missing", ["--x"], ["--no-x", "z"]), ["--no-x", "z"]),
    (_if_present("missing", "--x", "--no-x"), ["--no-x"]),
    (_if_present("data", "{{$.inputs.artifacts['data'].path}}"), ["/work/in/data"]),
    (_if_present("nodata", "{{$.inputs.artifacts['nodata'].path}}", "none"), ["none"]),
    # Parsed structures nested in structures (as kfp compiles IfPresent inside Concat).
    (
        json.dumps(
            {
                "Concat": [
                    "opt=",
                    {"IfPresent": {"InputName": "missing", "Then": "x", "Else": "none"}},
                    ",n=",
                    {"IfPresent": {"InputName": "n", "Then": "{{$.inputs.parameters['n']}}"}},
                ]
            }
        ),
        ["opt=none,n=3"],
    ),
    (
        json.dumps(
            {
                "IfPresent": {
                    "InputName": "n",
                    "Then": [{"Concat": ["-n", "{{$.inputs.parameters['n']}}"]}],
                }
            }
        ),
        ["-n3"],
    ),
]


@pytest.mark.parametrize(("item", "expected"), STRUCTURES)
def test_concat_and_if_present(item: str, expected: list[str]) -> None:
    assert Resolver(_files()).command_line(["before", item, "after"]) == [
        "before",
        *expected,
        "after",
    ]


def test_if_present_counts_a_null_parameter_as_absent() -> None:
    spec = _spec(parameter_values={"opt": None})
    assert Resolver(_files(spec)).command_line([_if_present("opt", ["yes"], ["no"])]) == ["no"]


def test_text_that_only_looks_like_json_is_kept() -> None:
    items = ['{"Concat": not json', '{"other": 1}']
    assert Resolver(_files()).command_line(items) == items


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("{{$.inputs.parameters['nope']}}", "has no value"),
        ("{{$.inputs.artifacts['nope'].path}}", "was not given"),
        ("{{$.outputs.artifacts['nope'].path}}", "not an output artifact"),
        ("{{$.outputs.parameters['nope'].output_file}}", "not an output parameter"),
        ("{{$.inputs.artifacts['data'].metadata['nope']}}", "no metadata key"),
        ("{{$.json_escape[1]}}", "unsupported placeholder"),
        ("{{$.inputs.artifacts['data'].size}}", "unsupported placeholder"),
        ("{{$.workspace_path}}", "no workspace"),
        (_if_present("n", "x").replace("InputName", "Name"), "needs an InputName"),
    ],
)
def test_bad_placeholders_fail_clearly(item: str, message: str) -> None:
    with pytest.raises(PlaceholderError, match=message):
        Resolver(_files()).command_line([item])


def test_workspace_path() -> None:
    spec = _spec(workspace_path="/kfp-workspace")
    assert Resolver(_files(spec)).command_line(["{{$.workspace_path}}/x"]) == ["/kfp-workspace/x"]


def test_schedule_time_when_given() -> None:
    spec = _spec(run_schedule_time="2026-02-02T00:00:00Z")
    assert Resolver(_files(spec)).command_line(["{{$.pipeline_job_schedule_time_utc}}"]) == [
        "2026-02-02T00:00:00Z"
    ]


def test_parameter_values_referring_to_other_inputs_are_filled_in() -> None:
    spec = _spec(
        parameter_values={
            "pipelinechannel--a-Output": "foo",
            "n": 2,
            "msg": "{{$.inputs.parameters['pipelinechannel--a-Output']}}-bar-{{$.inputs.parameters['n']}}",
            "chained": "<{{$.inputs.parameters['msg']}}>",
            "job": "{{$.pipeline_job_uuid}}",
            "unknown": "{{$.inputs.parameters['nope']}}",
        }
    )
    values = resolve_parameter_references(spec)
    assert values["msg"] == "foo-bar-2"
    assert values["chained"] == "<foo-bar-2>"
    assert values["job"] == "run-1"
    assert values["unknown"] == "{{$.inputs.parameters['nope']}}"
