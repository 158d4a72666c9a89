"""The real kfp SDK against a multi-user kfpd: an API token (existing_token), experiments and
runs in the user's namespace, a pipeline with artifacts run to SUCCEEDED by launchers that sign
in with their run tokens, and 403 in another namespace."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfpd.db.engine import Database
from kfpd.services import auth_store
from tests.helpers import compiled


def test_sdk_with_an_api_token(orchestrated_server: Any, db: Database, tmp_path: Path) -> None:
    import kfp
    from kfp_server_api.exceptions import ApiException

    config = tmp_path / "auth.yaml"
    bindings = [{"user": "alice", "role": "editor", "namespace": "team-a"}]
    config.write_text(yaml.safe_dump({"authorization": {"bindings": bindings}}))
    with db.write_session() as s:
        token = auth_store.create_token(s, "alice", expires_in_s=3600).token
    url = orchestrated_server(auth_config=config, data_dir=tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = kfp.Client(host=url, existing_token=token, namespace="team-a")
        anonymous = kfp.Client(host=url, namespace="team-a")
    assert client.get_kfp_healthz().multi_user is True

    experiment = client.create_experiment("alice-exp", namespace="team-a")
    package = tmp_path / "graph_demo.yaml"
    package.write_text(yaml.safe_dump(compiled("graph_demo")))
    run = client.create_run_from_pipeline_package(
        str(package), arguments={"threshold": 1}, experiment_name="alice-exp", namespace="team-a"
    )
    done = client.wait_for_run_completion(run.run_id, timeout=180, sleep_duration=0.2)
    assert done.state == "SUCCEEDED", done
    listed = client.list_runs(namespace="team-a", experiment_id=experiment.experiment_id)
    assert [r.run_id for r in listed.runs or []] == [run.run_id]
    assert [e.display_name for e in client.list_experiments(namespace="team-a").experiments or []]

    for call in (
        lambda: client.create_experiment("nope", namespace="team-b"),
        lambda: client.list_runs(namespace="team-b"),
    ):
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        anonymous.list_runs(namespace="team-a")
    assert err.value.status == 401
