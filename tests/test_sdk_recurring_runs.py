"""kfp.Client's recurring-run methods and the `kfp recurring-run` CLI, unchanged, against kfpd."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import kfp
import pytest
import yaml
from click.testing import CliRunner
from kfp.cli.cli import cli
from kfp_server_api.exceptions import ApiException

from tests.helpers import compiled


@pytest.fixture
def client(live_server: str) -> kfp.Client:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=live_server)


@pytest.fixture
def package(tmp_path: Path) -> str:
    path = tmp_path / "scheduled.yaml"
    path.write_text(yaml.safe_dump(compiled("scheduled")))
    return str(path)


def test_every_client_method(client: kfp.Client, package: str) -> None:
    exp = client.create_experiment("sched")
    periodic = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name="every-minute",
        description="periodic",
        start_time="2026-01-01T00:00:00Z",
        end_time="2030-01-01T00:00:00Z",
        interval_second=60,
        max_concurrency=3,
        no_catchup=True,
        params={"when": "[[ScheduledTime]]", "pause": 0},
        pipeline_package_path=package,
        enable_caching=False,
    )
    assert periodic.recurring_run_id and periodic.status == "ENABLED"
    assert periodic.trigger.periodic_schedule.interval_second == "60"
    assert periodic.trigger.periodic_schedule.start_time.year == 2026
    assert periodic.max_concurrency == "3" and periodic.no_catchup is True
    assert periodic.runtime_config.parameters == {"when": "[[ScheduledTime]]", "pause": 0}

    uploaded = client.upload_pipeline(package, pipeline_name="sched-pipe")
    version = client.list_pipeline_versions(uploaded.pipeline_id).pipeline_versions[0]
    cron = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name="nine-am",
        cron_expression="0 0 9 ? * 2-6",
        pipeline_id=uploaded.pipeline_id,
        version_id=version.pipeline_version_id,
        enabled=False,
    )
    assert cron.status == "DISABLED" and cron.mode == "DISABLE"
    assert cron.pipeline_version_reference.pipeline_version_id == version.pipeline_version_id
    assert cron.trigger.cron_schedule.cron == "0 0 9 ? * 2-6"

    got = client.get_recurring_run(cron.recurring_run_id)
    assert got.display_name == "nine-am" and got.created_at is not None
    client.enable_recurring_run(cron.recurring_run_id)
    assert client.get_recurring_run(cron.recurring_run_id).status == "ENABLED"
    client.disable_recurring_run(cron.recurring_run_id)
    assert client.get_recurring_run(cron.recurring_run_id).status == "DISABLED"

    listed = client.list_recurring_runs(experiment_id=exp.experiment_id, page_size=1)
    assert listed.total_size == 2 and len(listed.recurring_runs) == 1
    rest = client.list_recurring_runs(
        experiment_id=exp.experiment_id, page_token=listed.next_page_token, page_size=1
    )
    assert len(rest.recurring_runs) == 1
    by_name = client.list_recurring_runs(
        sort_by="display_name desc",
        filter=json.dumps(
            {
                "predicates": [
                    {"operation": "EQUALS", "key": "display_name", "stringValue": "nine-am"}
                ]
            }
        ),
    )
    assert [r.display_name for r in by_name.recurring_runs] == ["nine-am"]
    assert client.list_recurring_runs(namespace="").total_size == 2

    client.delete_recurring_run(periodic.recurring_run_id)
    with pytest.raises(ApiException) as err:
        client.get_recurring_run(periodic.recurring_run_id)
    assert err.value.status == 404
    with pytest.raises(ApiException) as bad:
        client.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name="too-many",
            interval_second=60,
            max_concurrency=11,
            pipeline_package_path=package,
        )
    assert bad.value.status == 400


def test_cli_commands(live_server: str, package: str) -> None:
    def kfp_cli(*args: str, stdin: str | None = None, raw: bool = False) -> Any:
        result = CliRunner().invoke(
            cli, ["--endpoint", live_server, "--output", "json", *args], obj={}, input=stdin
        )
        assert result.exit_code == 0, (result.output, result.exception)
        text = result.output
        if raw:
            return text
        # `create` prints a line about the experiment before the JSON.
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        return json.loads(text[start:]) if start >= 0 else text

    created = kfp_cli(
        "recurring-run",
        "create",
        "--experiment-name",
        "cli-exp",
        "--job-name",
        "cli-job",
        "--interval-second",
        "3600",
        "--enabled",
        "--pipeline-package-path",
        package,
        "when=[[CurrentTime]]",
    )
    rid = created["recurring_run_id"]
    assert created["display_name"] == "cli-job" and created["status"] == "ENABLED"
    assert created["no_catchup"] is True  # the CLI's default is --no-catchup
    assert created["runtime_config"]["parameters"] == {"when": "[[CurrentTime]]"}
    listed = kfp_cli("recurring-run", "list")
    assert [r["recurring_run_id"] for r in listed] == [rid]
    assert kfp_cli("recurring-run", "get", rid)["display_name"] == "cli-job"
    assert kfp_cli("recurring-run", "disable", rid)["status"] == "DISABLED"
    assert kfp_cli("recurring-run", "enable", rid)["status"] == "ENABLED"
    assert rid in kfp_cli("recurring-run", "delete", rid, stdin="y\n", raw=True)
    assert kfp_cli("recurring-run", "list") == []
