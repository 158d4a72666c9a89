"""The real kfp SDK (kfp.Client) against a running kfpd server."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import kfp
import pytest
from kfp_server_api.exceptions import ApiException

from tests.conftest import CORPUS, require_corpus

require_corpus()

ADD_NUMBERS = CORPUS / "critical" / "add_numbers.yaml"


@pytest.fixture
def client(live_server: str) -> kfp.Client:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=live_server)


def test_experiments(client: kfp.Client) -> None:
    exp = client.create_experiment("exp-a", description="first")
    assert exp.experiment_id
    again = client.create_experiment("exp-a")  # the SDK looks it up by name first
    assert again.experiment_id == exp.experiment_id
    got = client.get_experiment(experiment_id=exp.experiment_id)
    assert (got.display_name, got.description) == ("exp-a", "first")
    assert client.get_experiment(experiment_name="exp-a").experiment_id == exp.experiment_id
    client.create_experiment("exp-b")
    listed = client.list_experiments(page_size=2)
    assert listed.total_size == 3 and len(listed.experiments) == 2 and listed.next_page_token
    rest = client.list_experiments(page_token=listed.next_page_token, page_size=2)
    names = {e.display_name for e in [*listed.experiments, *rest.experiments]}
    assert names == {"Default", "exp-a", "exp-b"}  # Default: made at start-up
    client.archive_experiment(exp.experiment_id)
    assert client.get_experiment(experiment_id=exp.experiment_id).storage_state == "ARCHIVED"
    client.unarchive_experiment(exp.experiment_id)
    client.delete_experiment(exp.experiment_id)
    with pytest.raises(ApiException) as err:
        client.get_experiment(experiment_id=exp.experiment_id)
    assert err.value.status == 404


def test_pipelines_and_versions(client: kfp.Client, tmp_path: Path) -> None:
    uploaded = client.upload_pipeline(str(ADD_NUMBERS), pipeline_name="adder", description="adds")
    assert uploaded.pipeline_id and uploaded.display_name == "adder"
    version = client.upload_pipeline_version(
        str(CORPUS / "critical" / "flip_coin.yaml"),
        pipeline_version_name="v2",
        pipeline_name="adder",
    )
    assert version.pipeline_id == uploaded.pipeline_id
    assert client.get_pipeline_id("adder") == uploaded.pipeline_id
    assert client.get_pipeline_id("missing") is None
    assert client.get_pipeline(uploaded.pipeline_id).description == "adds"
    versions = client.list_pipeline_versions(uploaded.pipeline_id)
    assert versions.total_size == 2
    assert {v.display_name for v in versions.pipeline_versions} == {"adder", "v2"}
    fetched = client.get_pipeline_version(uploaded.pipeline_id, version.pipeline_version_id)
    assert fetched.pipeline_spec["pipelineInfo"]["name"] == "conditional-execution-pipeline"
    assert client.list_pipelines().total_size == 1

    # Archives as the SDK accepts them.
    import tarfile
    import zipfile

    tgz = tmp_path / "p.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(ADD_NUMBERS, arcname="pipeline.yaml")
    zipped = tmp_path / "p.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(ADD_NUMBERS, arcname="add.yaml")
    assert client.upload_pipeline(str(tgz), pipeline_name="from-tgz").pipeline_id
    assert client.upload_pipeline(str(zipped), pipeline_name="from-zip").pipeline_id
    client.delete_pipeline_version(uploaded.pipeline_id, version.pipeline_version_id)
    assert client.list_pipeline_versions(uploaded.pipeline_id).total_size == 1


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.yaml")),
)
def test_upload_every_corpus_file(client: kfp.Client, path: str) -> None:
    pipeline = client.upload_pipeline(str(CORPUS / path), pipeline_name=path)
    version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0]
    assert version.pipeline_spec


def test_runs(client: kfp.Client) -> None:
    result = client.create_run_from_pipeline_package(
        str(ADD_NUMBERS), arguments={"a": 4, "b": 6}, run_name="r1", experiment_name="runs-exp"
    )
    run = client.get_run(result.run_id)
    assert run.display_name == "r1" and run.state == "PENDING"
    assert run.runtime_config.parameters == {"a": 4, "b": 6}
    assert run.pipeline_spec["pipelineInfo"]["name"] == "add-numbers"
    exp_id = client.get_experiment(experiment_name="runs-exp").experiment_id
    assert run.experiment_id == exp_id
    for i in range(4):
        client.create_run_from_pipeline_package(
            str(ADD_NUMBERS),
            arguments={"a": i, "b": 1},
            run_name=f"other-{i}",
            experiment_id=exp_id,
        )
    assert client.list_runs().total_size == 5
    assert client.list_runs(experiment_id=exp_id).total_size == 5
    first = client.list_runs(page_size=2, sort_by="created_at desc")
    second = client.list_runs(
        page_size=2, sort_by="created_at desc", page_token=first.next_page_token
    )
    names = [r.display_name for r in first.runs + second.runs]
    assert names == ["other-3", "other-2", "other-1", "other-0"]
    flt = json.dumps({"predicates": [{"operation": 1, "key": "display_name", "stringValue": "r1"}]})
    filtered = client.list_runs(filter=flt)
    assert [r.run_id for r in filtered.runs] == [result.run_id] and filtered.total_size == 1
    substr = json.dumps(
        {"predicates": [{"operation": "IS_SUBSTRING", "key": "name", "string_value": "other"}]}
    )
    assert client.list_runs(filter=substr).total_size == 4

    client.archive_run(result.run_id)
    assert client.get_run(result.run_id).storage_state == "ARCHIVED"
    archived = json.dumps(
        {"predicates": [{"operation": 1, "key": "storage_state", "stringValue": "ARCHIVED"}]}
    )
    assert client.list_runs(filter=archived).total_size == 1
    client.unarchive_run(result.run_id)
    client.terminate_run(result.run_id)
    assert client.get_run(result.run_id).state == "CANCELED"
    client.delete_run(result.run_id)
    with pytest.raises(ApiException) as err:
        client.get_run(result.run_id)
    assert err.value.status == 404


def test_run_from_pipeline_version(client: kfp.Client) -> None:
    pipeline = client.upload_pipeline(str(ADD_NUMBERS), pipeline_name="adder")
    version = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions[0]
    exp = client.create_experiment("by-version")
    run = client.run_pipeline(
        experiment_id=exp.experiment_id,
        job_name="by-ref",
        params={"a": 1, "b": 2},
        pipeline_id=pipeline.pipeline_id,
        version_id=version.pipeline_version_id,
    )
    got = client.get_run(run.run_id)
    assert got.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    with pytest.raises(ApiException) as err:
        client.run_pipeline(
            experiment_id=exp.experiment_id,
            job_name="bad",
            params={"a": 1},
            pipeline_id=pipeline.pipeline_id,
            version_id=version.pipeline_version_id,
        )
    assert err.value.status == 400 and "missing required pipeline parameter" in err.value.body
