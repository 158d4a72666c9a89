"""Retention: the pure decision, and `kfpd gc` / collect on every database, lineage-aware."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from kfpd.cli.main import app as cli
from kfpd.db.engine import Database
from kfpd.db.models import Artifact, Run, Task
from kfpd.domain.enums import RunState
from kfpd.domain.timeutil import now_us
from kfpd.services import retention
from kfpd.services.retention import PolicySet, RetentionPolicy, RunFacts, select_expired
from tests.retention_seed import DAY_US, seed

NOW = 1_000 * DAY_US


def _run(
    i: int, age_days: float, *, exp: str = "e1", ns: str = "", state: RunState = RunState.SUCCEEDED
) -> RunFacts:
    created = NOW - int(age_days * DAY_US) - 10
    finished = created + 5 if state.is_terminal else 0
    return RunFacts(f"r{i}", ns, exp, int(state), created, finished)


@pytest.mark.parametrize(
    ("runs", "policies", "expected"),
    [
        # Age: only runs finished before the cutoff.
        ([_run(1, 40), _run(2, 10)], PolicySet(RetentionPolicy(30)), ["r1"]),
        # No max age: nothing expires, whatever keep-last says.
        ([_run(1, 400)], PolicySet(RetentionPolicy(None, 0)), []),
        # Keep the newest N of each experiment even when old.
        ([_run(1, 90), _run(2, 80), _run(3, 70)], PolicySet(RetentionPolicy(30, 2)), ["r1"]),
        # Keep-last counts per experiment.
        (
            [_run(1, 90, exp="a"), _run(2, 80, exp="a"), _run(3, 90, exp="b")],
            PolicySet(RetentionPolicy(30, 1)),
            ["r1"],
        ),
        # Unfinished runs never go, however old.
        (
            [_run(1, 90, state=RunState.RUNNING), _run(2, 90, state=RunState.PENDING)],
            PolicySet(RetentionPolicy(1)),
            [],
        ),
        # Every final state expires: failed and canceled too.
        (
            [_run(1, 90, state=RunState.FAILED), _run(2, 90, state=RunState.CANCELED)],
            PolicySet(RetentionPolicy(1)),
            ["r1", "r2"],
        ),
        # A namespace's own policy replaces the default.
        (
            [_run(1, 20, exp="a", ns="team-a"), _run(2, 20, exp="b", ns="team-b")],
            PolicySet(RetentionPolicy(30), {"team-a": RetentionPolicy(7)}),
            ["r1"],
        ),
        # A namespace can opt out of the default.
        (
            [_run(1, 90, exp="a", ns="keep"), _run(2, 90, exp="b", ns="other")],
            PolicySet(RetentionPolicy(30), {"keep": RetentionPolicy(None)}),
            ["r2"],
        ),
    ],
)
def test_select_expired(runs: list[RunFacts], policies: PolicySet, expected: list[str]) -> None:
    assert select_expired(runs, policies, NOW) == expected


def _count(db: Database, model: type) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_collect_is_lineage_aware(db: Database, tmp_path: Path) -> None:
    artifact_root = tmp_path / "artifacts"
    artifact_root.mkdir()

    def uri_of(art_id: str) -> str:
        path = artifact_root / art_id
        path.write_text(art_id)
        return path.as_uri()

    # 2 experiments x 6 runs; run i is (60 - 10 i) days old; runs 2 and 4 read the previous
    # run's artifact (share_every=2).
    seeded = seed(
        db,
        experiments=2,
        runs_per_experiment=6,
        age_days=lambda i: 60 - 10 * i,
        share_every=2,
        uri_of=uri_of,
    )
    log_root = tmp_path / "logs"
    for run in seeded.runs:
        (log_root / run["id"]).mkdir(parents=True)
    policies = PolicySet(RetentionPolicy(max_age_days=25))  # runs 0, 1, 2, 3 (60..30 days) go
    expiring = {r["id"] for r in seeded.runs if r["index"] <= 3}

    with db.read_session() as s:
        report = retention.plan(s, policies, now_us())
    assert report.dry_run and set(report.run_ids) == expiring
    assert report.tasks == 2 * len(expiring)
    # Run 3's artifact is read by kept run 4: it stays. The other expiring runs' artifacts go.
    shared = {seeded.consumed[r["id"]] for r in seeded.runs if r["index"] == 4}
    assert report.artifacts == len(expiring) - len(shared)
    assert report.artifacts_kept_shared == len(shared)
    assert _count(db, Run) == 12  # a dry run changes nothing

    done = retention.collect_with_settings(
        db.write_session,
        policies,
        now_us(),
        log_root=log_root,
        artifact_root=artifact_root,
        delete_artifacts=True,
    )
    assert (done.runs, done.tasks, done.artifacts) == (report.runs, report.tasks, report.artifacts)
    assert done.artifact_objects == report.artifacts and not done.artifact_object_errors
    assert _count(db, Run) == 12 - len(expiring)
    assert _count(db, Task) == 2 * (12 - len(expiring))
    with db.read_session() as s:
        left = set(s.scalars(select(Artifact.id)))
    for run in seeded.runs:
        art = seeded.artifacts[run["id"]]
        kept = run["id"] not in expiring or art in shared
        assert (art in left) is kept, run
        assert (artifact_root / art).exists() is kept  # the object went with its row
        assert (log_root / run["id"]).exists() is (run["id"] not in expiring)
    # A second collection finds nothing more.
    again = retention.collect_with_settings(
        db.write_session,
        policies,
        now_us(),
        log_root=log_root,
        artifact_root=artifact_root,
        delete_artifacts=True,
    )
    assert (again.runs, again.artifacts) == (0, 0)


def test_object_deleter_stays_inside_the_artifact_root(tmp_path: Path) -> None:
    outside = tmp_path / "precious.csv"
    outside.write_text("keep me")
    delete = retention.object_deleter(tmp_path / "artifacts")
    with pytest.raises(ValueError, match="outside the artifact root"):
        delete(outside.as_uri())
    assert outside.exists()


def test_gc_cli_dry_run_and_real(db: Database, tmp_path: Path) -> None:
    seed(db, experiments=1, runs_per_experiment=4, age_days=lambda i: 40 - 10 * i, share_every=0)
    url = db.url.render_as_string(hide_password=False)
    runner = CliRunner()
    base = ["gc", "--db-url", url, "--data-dir", str(tmp_path), "--max-age-days", "25"]
    dry = runner.invoke(cli, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove" in dry.output
    assert _count(db, Run) == 4
    real = runner.invoke(cli, [*base, "--keep-last", "3"])
    assert real.exit_code == 0, real.output
    assert "removed" in real.output
    assert _count(db, Run) == 3  # 2 were old enough, but the newest 3 stay
    nothing = runner.invoke(cli, ["gc", "--db-url", url, "--data-dir", str(tmp_path)])
    assert nothing.exit_code == 2 and "no retention policy" in nothing.output


def test_the_server_applies_the_configured_policy(db: Database, tmp_path: Path) -> None:
    import time

    from fastapi.testclient import TestClient

    from kfpd.api.app import create_app
    from kfpd.config import Settings

    seed(db, experiments=1, runs_per_experiment=3, age_days=lambda i: 50 - 20 * i, share_every=0)
    settings = Settings(
        data_dir=tmp_path,
        orchestrate=False,
        retention={"max_age_days": 20, "interval_minutes": 0.005},  # every 0.3 s
    )
    app = create_app(settings, database=db)
    with TestClient(app):
        deadline = time.monotonic() + 20
        job = app.state.retention
        while (
            job.last_report is None or job.last_report.runs == 0
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.last_report is not None and job.last_report.runs == 2
        assert _count(db, Run) == 1  # 50 and 30 days old went; 10 days old stays
    assert (
        create_app(Settings(data_dir=tmp_path, orchestrate=False), database=db).state.retention
        is None
    )
