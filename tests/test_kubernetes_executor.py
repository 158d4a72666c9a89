"""The Kubernetes executor's pod handling against an autospec'd ``CoreV1Api`` and ``Watch``
(no cluster exists here, none can be installed): pod event sequences shaped like the API's
PodStatus (hand-written from its documented fields, not recorded from a live cluster) drive
it through success, image pull errors, OOM, eviction, node loss, deletion, pending timeout,
cancel, and adoption by a restarted server."""

from __future__ import annotations

import threading
from typing import Any
from unittest import mock

import pytest
from kubernetes import client, watch

from kfpd.executors.base import TaskExit
from kfpd.executors.kubernetes_executor import KubernetesExecutor, pod_outcome
from kfpd.executors.kubernetes_pods import pod_name
from tests.kube import launch_spec

NS = "team-a"
SPEC = launch_spec()
POD = pod_name(SPEC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _core() -> Any:
    core = mock.create_autospec(client.CoreV1Api, instance=True)
    core.create_namespaced_pod.return_value = client.V1Pod(
        metadata=client.V1ObjectMeta(name=POD, namespace=NS, uid="pod-uid-1")
    )
    return core


def _executor(core: Any, clock: Clock | None = None, **kwargs: Any) -> KubernetesExecutor:
    return KubernetesExecutor(
        core,
        namespace=NS,
        launcher_image="launcher:1",
        pending_timeout_s=300,
        clock=clock or Clock(),
        start_watch=False,
        **kwargs,
    )


def _container(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "image": "python:3.11",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }


def pod(
    phase: str,
    *,
    main: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    reason: str | None = None,
    message: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    task_id: str = SPEC.task_id,
    name: str = POD,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if main is not None:
        status["containerStatuses"] = [_container("main", main)]
    if init is not None:
        status["initContainerStatuses"] = [_container("kfpd-launcher", init)]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if conditions:
        status["conditions"] = conditions
    labels = {"kfpd.io/task-id": task_id, "kfpd.io/managed-by": "kfpd"}
    return {"metadata": {"name": name, "namespace": NS, "labels": labels}, "status": status}


WAITING_INIT = {"waiting": {"reason": "PodInitializing"}}
RUNNING = {"running": {"startedAt": "2026-12-03T10:00:00Z"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}


class Exits:
    def __init__(self) -> None:
        self.seen: list[TaskExit] = []
        self.event = threading.Event()

    def __call__(self, exit_: TaskExit) -> None:
        self.seen.append(exit_)
        self.event.set()


def _submitted(core: Any, clock: Clock | None = None) -> tuple[KubernetesExecutor, Exits]:
    executor = _executor(core, clock)
    exits = Exits()
    executor.submit(SPEC, exits)
    return executor, exits


def _feed(executor: KubernetesExecutor, events: list[tuple[str, dict[str, Any]]]) -> None:
    for kind, obj in events:
        executor.handle_event(kind, obj)


def test_submit_creates_the_spec_secret_and_the_pod_and_hands_the_secret_to_the_pod() -> None:
    core = _core()
    _submitted(core)
    secret = core.create_namespaced_secret.call_args.args[1]
    assert secret["metadata"]["name"] == f"{POD}-spec"
    created = core.create_namespaced_pod.call_args.args
    assert created[0] == NS and created[1]["metadata"]["name"] == POD
    name, namespace, patch = core.patch_namespaced_secret.call_args.args
    assert (name, namespace) == (f"{POD}-spec", NS)
    assert patch["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "pod-uid-1"}
    ]


def test_pending_running_succeeded() -> None:
    core = _core()
    executor, exits = _submitted(core)
    _feed(
        executor,
        [
            ("ADDED", pod("Pending")),
            ("MODIFIED", pod("Pending", init=RUNNING, main=WAITING_INIT)),
            ("MODIFIED", pod("Running", init=DONE, main=RUNNING)),
        ],
    )
    assert exits.seen == []
    _feed(executor, [("MODIFIED", pod("Succeeded", init=DONE, main=DONE))])
    assert exits.seen == [TaskExit(SPEC.task_id, 0, None)]
    core.delete_namespaced_pod.assert_called_once_with(POD, NS, grace_period_seconds=0)
    # The DELETED event that follows our own clean-up reports nothing twice.
    _feed(executor, [("DELETED", pod("Succeeded", init=DONE, main=DONE))])
    assert len(exits.seen) == 1
    core.read_namespaced_pod.assert_not_called()  # no per-pod polling


def test_image_pull_back_off_fails_the_task_with_the_reason() -> None:
    core = _core()
    executor, exits = _submitted(core)
    pull = 'Back-off pulling image "ghcr.io/no/such:tag"'
    _feed(
        executor,
        [
            ("MODIFIED", pod("Pending", init=DONE, main={"waiting": {"reason": "ErrImagePull"}})),
        ],
    )
    assert exits.seen == [], "ErrImagePull may still resolve: wait for the back-off"
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": pull}}
    _feed(executor, [("MODIFIED", pod("Pending", init=DONE, main=waiting))])
    (exit_,) = exits.seen
    assert exit_.returncode is None
    assert exit_.reason is not None
    assert "ImagePullBackOff (container main)" in exit_.reason and pull in exit_.reason
    core.delete_namespaced_pod.assert_called_once()


def test_missing_secret_fails_at_container_creation() -> None:
    core = _core()
    executor, exits = _submitted(core)
    waiting = {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "db" not found'}
    }
    _feed(executor, [("MODIFIED", pod("Pending", init=DONE, main=waiting))])
    assert exits.seen[0].reason is not None and 'secret "db" not found' in exits.seen[0].reason


def test_oom_killed() -> None:
    core = _core()
    executor, exits = _submitted(core)
    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    _feed(
        executor,
        [
            ("MODIFIED", pod("Running", init=DONE, main=RUNNING)),
            ("MODIFIED", pod("Failed", init=DONE, main=oom)),
        ],
    )
    (exit_,) = exits.seen
    assert exit_.returncode == 137
    assert exit_.reason == "the pod failed: OOMKilled: container main ran out of memory"


def test_eviction() -> None:
    core = _core()
    executor, exits = _submitted(core)
    message = "The node was low on resource: memory."
    _feed(
        executor,
        [
            ("MODIFIED", pod("Running", init=DONE, main=RUNNING)),
            ("MODIFIED", pod("Failed", reason="Evicted", message=message)),
        ],
    )
    assert exits.seen[0].reason == f"the pod failed: Evicted: {message}"


def test_deadline_exceeded() -> None:
    core = _core()
    executor, exits = _submitted(core)
    message = "Pod was active on the node longer than the specified deadline"
    _feed(executor, [("MODIFIED", pod("Failed", reason="DeadlineExceeded", message=message))])
    assert exits.seen[0].reason == f"the pod failed: DeadlineExceeded: {message}"


def test_node_lost() -> None:
    core = _core()
    executor, exits = _submitted(core)
    _feed(
        executor,
        [
            ("MODIFIED", pod("Running", init=DONE, main=RUNNING)),
            ("MODIFIED", pod("Unknown", reason="NodeLost")),
        ],
    )
    assert exits.seen[0].reason == "the pod was lost: phase Unknown (NodeLost)"


def test_a_pod_deleted_by_someone_else_fails_the_task() -> None:
    core = _core()
    executor, exits = _submitted(core)
    _feed(
        executor,
        [
            ("MODIFIED", pod("Running", init=DONE, main=RUNNING)),
            ("DELETED", pod("Running", init=DONE, main=RUNNING)),
        ],
    )
    assert exits.seen[0].reason == "the pod was deleted before it finished (not by kfpd)"


def test_cancel_deletes_the_pod_and_reports_canceled() -> None:
    core = _core()
    executor, exits = _submitted(core)
    _feed(executor, [("MODIFIED", pod("Running", init=DONE, main=RUNNING))])
    executor.cancel(SPEC.task_id)
    core.delete_namespaced_pod.assert_called_once_with(POD, NS, grace_period_seconds=0)
    assert exits.seen == []
    killed = {"terminated": {"exitCode": 137, "reason": "Error"}}
    _feed(executor, [("DELETED", pod("Failed", init=DONE, main=killed))])
    assert exits.seen == [TaskExit(SPEC.task_id, -9, "canceled")]


def test_pending_too_long_fails_with_the_schedulers_message() -> None:
    core = _core()
    clock = Clock()
    executor, exits = _submitted(core, clock)
    unschedulable = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ]
    _feed(executor, [("MODIFIED", pod("Pending", conditions=unschedulable))])
    clock.now += 200
    executor.check_pending()
    assert exits.seen == []
    clock.now += 200  # 400 s > the 300 s allowed, with no new event
    executor.check_pending()
    (exit_,) = exits.seen
    assert exit_.reason == (
        "the pod stayed Pending for more than 300 s: Unschedulable: "
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    core.delete_namespaced_pod.assert_called_once()


def test_api_errors_and_bad_config_fail_the_task_with_a_message() -> None:
    core = _core()
    core.create_namespaced_pod.side_effect = client.ApiException(status=403, reason="Forbidden")
    executor, exits = _submitted(core)
    assert exits.seen[0].reason == "could not create the pod: 403 Forbidden"
    core.delete_namespaced_secret.assert_called_once_with(f"{POD}-spec", NS)
    bad = launch_spec(kubernetes={"pvcMount": [{"mountPath": "/data"}]})
    exits = Exits()
    executor.submit(bad, exits)
    assert exits.seen[0].reason is not None
    assert exits.seen[0].reason.startswith("cannot build the task's pod: a PVC mount")


def test_one_watch_follows_every_pod_by_label() -> None:
    core = _core()
    fake_watch = mock.create_autospec(watch.Watch, instance=True)
    events = [
        {"type": "ADDED", "object": client.V1Pod(**_model(pod("Pending")))},
        {"type": "MODIFIED", "object": client.V1Pod(**_model(pod("Succeeded", main=DONE)))},
    ]
    release = threading.Event()

    def stream(*_args: Any, **_kwargs: Any) -> Any:
        release.wait(10)
        yield from events
        release.clear()

    fake_watch.stream.side_effect = stream
    executor = KubernetesExecutor(
        core,
        namespace=NS,
        launcher_image="launcher:1",
        watch_factory=lambda: fake_watch,
    )
    exits = Exits()
    executor.submit(SPEC, exits)
    release.set()
    assert exits.event.wait(10)
    assert exits.seen == [TaskExit(SPEC.task_id, 0, None)]
    first = fake_watch.stream.call_args_list[0]
    assert first.args == (core.list_namespaced_pod, NS)
    assert first.kwargs["label_selector"] == "kfpd.io/managed-by=kfpd"
    executor.shutdown()


def _model(obj: dict[str, Any]) -> dict[str, Any]:
    """A pod dict as the client's model arguments (what Watch.stream deserializes)."""
    api = client.ApiClient()
    response = mock.Mock(data=__import__("json").dumps(obj))
    model = api.deserialize(response, "V1Pod")
    return {k: getattr(model, k) for k in ("metadata", "status")}


def test_a_restarted_server_adopts_its_pods_by_label() -> None:
    core = _core()
    other = "1e0c2a9e-0000-4000-8000-0000000000bb"
    core.list_namespaced_pod.return_value = client.V1PodList(
        items=[
            client.V1Pod(**_model(pod("Running", init=DONE, main=RUNNING))),
            client.V1Pod(**_model(pod("Running", main=RUNNING, task_id=other, name="kfpd-x-1"))),
        ]
    )
    executor = _executor(core)
    exits = Exits()
    adopted = executor.adopt({SPEC.task_id: SPEC.run_id}, exits)
    assert adopted == {SPEC.task_id}, "only pods of tasks the database says are running"
    core.list_namespaced_pod.assert_called_once_with(NS, label_selector="kfpd.io/managed-by=kfpd")
    assert exits.seen == []
    _feed(executor, [("MODIFIED", pod("Succeeded", init=DONE, main=DONE))])
    assert exits.seen == [TaskExit(SPEC.task_id, 0, None)]


def test_adoption_reports_a_pod_that_ended_while_the_server_was_down() -> None:
    core = _core()
    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    core.list_namespaced_pod.return_value = client.V1PodList(
        items=[client.V1Pod(**_model(pod("Failed", init=DONE, main=oom)))]
    )
    executor = _executor(core)
    exits = Exits()
    assert executor.adopt({SPEC.task_id: SPEC.run_id}, exits) == {SPEC.task_id}
    assert exits.seen[0].returncode == 137


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (pod("Pending"), None),
        (pod("Running", main=RUNNING), None),
        (pod("Succeeded", main=DONE), 0),
        (pod("Running", main={"terminated": {"exitCode": 3, "reason": "Error"}}), 3),
    ],
)
def test_pod_outcome_codes(status: dict[str, Any], expected: int | None) -> None:
    outcome = pod_outcome(status, pending_for=0, pending_timeout=60)
    assert (outcome.returncode if outcome else None) == expected


def test_the_runs_workspace_claim_is_made_once() -> None:
    core = _core()
    core.create_namespaced_persistent_volume_claim.side_effect = [
        None,
        client.ApiException(status=409, reason="Conflict"),
    ]
    executor = _executor(core)
    workspace = {"workspace": {"size": "5Gi"}}
    first = launch_spec(kubernetes=workspace, workspace_path=f"/kfp-workspace/{SPEC.run_id}")
    second = launch_spec(
        task_id="second-task", kubernetes=workspace, workspace_path=first.workspace_path
    )
    exits = Exits()
    executor.submit(first, exits)
    executor.submit(second, exits)
    assert exits.seen == []
    assert core.create_namespaced_pod.call_count == 2
    claim = core.create_namespaced_persistent_volume_claim.call_args_list[0].args[1]
    assert claim["metadata"]["name"] == f"kfpd-workspace-{SPEC.run_id}"
    assert claim["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
