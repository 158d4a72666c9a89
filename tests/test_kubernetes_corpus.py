"""Every corpus pipeline that uses kfp-kubernetes executor config, run through kfpd's real
orchestrator with ``executor=kubernetes`` semantics (platform config resolved for a pod
builder, not applied locally): each launched task becomes a Pod manifest, validated against
the Kubernetes API schema, and each feature of its config is asserted in the pod spec —
secrets and config maps as env and volumes (names from pipeline inputs, constants and other
tasks' outputs), pod labels and annotations, field-path env, and optional inputs left unset.

No cluster runs the pods (none can be installed here): a stand-in executor builds the pod,
then reports the task done through the real launcher report call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.executors.base import TaskExit
from kfpd.executors.kubernetes_pods import build_pod
from kfpd.launcher.reporter import Reporter
from kfpd.schemas.launch import FinishTaskRequest, LaunchSpec
from tests.conftest import CORPUS, _free_port, _serve, require_corpus
from tests.kube import assert_valid

require_corpus()

DUMMY = {"STRING": "value", "BOOLEAN": True, "NUMBER_INTEGER": 1}


class PodBuildingExecutor:
    """Builds each task's pod, then reports the task succeeded with placeholder outputs."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}  # task name -> pod
        self.specs: dict[str, LaunchSpec] = {}  # task name -> its launch spec
        self.lock = threading.Lock()

    def submit(self, spec: LaunchSpec, on_exit: Callable[[TaskExit], None]) -> None:
        pod = build_pod(spec, namespace="kubeflow-user", launcher_image="kfpd-launcher:test")
        with self.lock:
            self.pods[spec.task_name] = pod
            self.specs[spec.task_name] = spec
        outputs = {
            key: f"{spec.task_name}-{key}" if kind == "STRING" else DUMMY.get(kind, "x")
            for key, kind in spec.output_parameters.items()
        }
        reporter = Reporter(spec.server_url, spec.token)
        request = FinishTaskRequest(state="SUCCEEDED", output_parameters=outputs)
        threading.Thread(target=self._finish, args=(reporter, spec, request, on_exit)).start()

    def _finish(
        self,
        reporter: Reporter,
        spec: LaunchSpec,
        request: FinishTaskRequest,
        on_exit: Callable[[TaskExit], None],
    ) -> None:
        try:
            reporter.finish(spec.run_id, spec.task_id, request)
        finally:
            reporter.close()
            on_exit(TaskExit(spec.task_id, 0))

    def cancel(self, task_id: str) -> None:
        del task_id

    def shutdown(self) -> None:
        pass


@pytest.fixture
def k8s_server(tmp_path: Path) -> Iterator[tuple[str, PodBuildingExecutor]]:
    url = f"sqlite:///{tmp_path / 'kfpd.sqlite'}"
    upgrade(url)
    database = Database(url)
    executor = PodBuildingExecutor()
    port = _free_port()
    settings = Settings(data_dir=tmp_path, port=port, executor="kubernetes")
    server, thread = _serve(create_app(settings, database=database, executor=executor), port)
    yield f"http://127.0.0.1:{port}", executor
    server.should_exit = True
    thread.join(timeout=30)
    database.dispose()


def _run(url: str, name: str, **arguments: Any) -> dict[str, Any]:
    import kfp

    client = kfp.Client(host=url)
    created = client.create_run_from_pipeline_package(str(CORPUS / name), arguments=arguments)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/apis/v2beta1/runs/{created.run_id}")
        run: dict[str, Any] = response.json()
        if run["state"] in ("SUCCEEDED", "FAILED"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run of {name} did not finish")


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    assert_valid(pod)
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom") for e in _main(pod)["env"]}


def test_corpus_lists_the_pipelines_covered_here() -> None:
    platform = [
        line.split("\t")[0]
        for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines()
        if "k8s-platform" in line
    ]
    covered = {
        "critical/pipeline_with_secret_as_env.yaml",
        "critical/pipeline_with_pod_metadata.yaml",
        "critical/missing_kubernetes_optional_inputs.yaml",
        "critical/pipeline_with_workspace.yaml",
        # Its importers download into the workspace inside the server, which a pod's volume
        # is not: its pods are checked here, the importer part is not (docs/executors.md).
        "critical/pipeline_with_importer_workspace.yaml",
    }
    assert set(platform) == covered


def test_secret_as_env_names_from_inputs_constants_and_task_outputs(
    k8s_server: tuple[str, PodBuildingExecutor],
) -> None:
    url, executor = k8s_server
    run = _run(url, "critical/pipeline_with_secret_as_env.yaml", secret_parm="from-input")
    assert run["state"] == "SUCCEEDED", run
    env = _env(executor.pods["comp"])
    assert env["USER_NAME"] == {"secretKeyRef": {"name": "from-input", "key": "username"}}
    assert env["PASSWORD_VAR1"] == {"secretKeyRef": {"name": "test-secret-2", "key": "password"}}
    producer = "generate-secret-name-some_output"  # the producer task's reported output
    assert env["PASSWORD_VAR2"] == {"secretKeyRef": {"name": producer, "key": "password"}}


def test_pod_metadata_and_field_path_env(k8s_server: tuple[str, PodBuildingExecutor]) -> None:
    url, executor = k8s_server
    run = _run(url, "critical/pipeline_with_pod_metadata.yaml")
    assert run["state"] == "SUCCEEDED", run
    pod_a = executor.pods["validate-pod-metadata-task-a"]
    assert pod_a["metadata"]["annotations"]["task-annotation"] == "annotation"
    labels = pod_a["metadata"]["labels"]
    assert labels["task-label-1"] == "label-1" and labels["task-label-2"] == "label-2"
    env = _env(pod_a)
    assert env["POD_TASK_LABEL_2"] == {"fieldRef": {"fieldPath": "metadata.labels['task-label-2']"}}
    pod_b = executor.pods["validate-pod-metadata-task-b"]
    annotations = pod_b["metadata"]["annotations"]
    assert {annotations[f"task-annotation-{i}"] for i in range(1, 5)} == {
        f"annotation-{i}" for i in range(1, 5)
    }
    assert labels["kfpd.io/task-id"] != pod_b["metadata"]["labels"]["kfpd.io/task-id"]
    bare = executor.pods["validate-no-pod-metadata"]["metadata"]
    assert "task-label" not in bare["labels"] and "task-annotation" not in bare["annotations"]
    assert set(executor.pods) == {
        "validate-no-pod-metadata",
        *(f"validate-pod-metadata-task-{x}" for x in "abcd"),
    }


def test_optional_inputs_left_unset_add_nothing(
    k8s_server: tuple[str, PodBuildingExecutor],
) -> None:
    url, executor = k8s_server
    run = _run(url, "critical/missing_kubernetes_optional_inputs.yaml")
    assert run["state"] == "SUCCEEDED", run
    pod = executor.pods["log-message"]
    spec = pod["spec"]
    assert {"nodeSelector", "tolerations", "affinity", "imagePullSecrets"}.isdisjoint(spec)
    assert [v["name"] for v in spec["volumes"]] == ["kfpd-launcher", "kfpd-spec"]
    assert {"SETTING", "PASSWORD"}.isdisjoint(_env(pod))


def test_optional_inputs_given_land_in_the_pod(k8s_server: tuple[str, PodBuildingExecutor]) -> None:
    url, executor = k8s_server
    affinity = {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
            ]
        }
    }
    run = _run(
        url,
        "critical/missing_kubernetes_optional_inputs.yaml",
        optional_config_map_name="cfg",
        optional_secret_name="sec",
        optional_image_pull_secret_name="regcred",
        optional_selector={"disk": "ssd"},
        optional_tolerations=[{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        optional_affinity=affinity,
    )
    assert run["state"] == "SUCCEEDED", run
    pod = executor.pods["log-message"]
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["affinity"] == {"nodeAffinity": affinity}
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    env = _env(pod)
    assert env["SETTING"] == {
        "configMapKeyRef": {"name": "cfg", "key": "setting", "optional": True}
    }
    assert env["PASSWORD"] == {"secretKeyRef": {"name": "sec", "key": "password", "optional": True}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in _main(pod)["volumeMounts"]}
    assert mounts["/mnt/config"]["configMap"] == {"name": "cfg", "optional": True}
    assert mounts["/mnt/secret"]["secret"] == {"secretName": "sec", "optional": True}


def test_create_pvc_task_creates_the_claim_and_outputs_its_name(tmp_path: Path) -> None:
    """kfp-kubernetes CreatePVC (image argostub/createpvc) through the real Kubernetes
    executor with an autospec'd API client: a claim, no pod; the next task gets its pod."""
    from unittest import mock

    from kubernetes import client as k8s

    from kfpd.executors.kubernetes_executor import KubernetesExecutor

    core = mock.create_autospec(k8s.CoreV1Api, instance=True)
    core.create_namespaced_pod.return_value = k8s.V1Pod(metadata=k8s.V1ObjectMeta(uid="u-1"))
    executor = KubernetesExecutor(core, namespace="ns", launcher_image="l:1", start_watch=False)
    url = f"sqlite:///{tmp_path / 'kfpd.sqlite'}"
    upgrade(url)
    database = Database(url)
    port = _free_port()
    settings = Settings(data_dir=tmp_path, port=port, executor="kubernetes")
    server, thread = _serve(create_app(settings, database=database, executor=executor), port)
    try:
        import kfp

        base = f"http://127.0.0.1:{port}"
        created = kfp.Client(host=base).create_run_from_pipeline_package(
            str(CORPUS / "critical/pipeline_with_volume_long_name.yaml")
        )
        deadline = time.monotonic() + 30
        while not core.create_namespaced_pod.called and time.monotonic() < deadline:
            time.sleep(0.1)
        full = httpx.get(f"{base}/apis/v2beta1/runs/{created.run_id}", params={"view": "FULL"})
        tasks = {t["name"]: t for t in full.json()["tasks"]}
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        database.dispose()
    namespace, claim = core.create_namespaced_persistent_volume_claim.call_args.args
    assert namespace == "ns"
    assert_valid(claim)
    assert claim["metadata"]["name"].endswith("-my-pvc")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "standard",
    }
    pvc_task = tasks["createpvc"]
    assert pvc_task["state"] == "SUCCEEDED", pvc_task
    outputs = {p["parameter_key"]: p["value"] for p in pvc_task["outputs"]["parameters"]}
    assert outputs == {"name": claim["metadata"]["name"]}
    pod = core.create_namespaced_pod.call_args.args[1]
    assert (
        pod["spec"]["containers"][0]["image"] == "registry.access.redhat.com/ubi9/python-311:latest"
    )
    assert core.create_namespaced_pod.call_count == 1, "no pod for the CreatePVC task"


@pytest.mark.parametrize(
    "name",
    ["critical/pipeline_with_workspace.yaml", "critical/pipeline_with_importer_workspace.yaml"],
)
def test_workspace_is_a_per_run_volume_in_every_pod(
    k8s_server: tuple[str, PodBuildingExecutor], name: str
) -> None:
    from kfpd.executors.kubernetes_pods import workspace_claim_manifest

    url, executor = k8s_server
    run = _run(url, name)
    assert executor.pods, run
    claims = set()
    for task_name, pod in executor.pods.items():
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        claim = volumes["kfpd-workspace"]["persistentVolumeClaim"]["claimName"]
        claims.add(claim)
        mounts = {m["name"]: m["mountPath"] for m in _main(pod)["volumeMounts"]}
        assert mounts["kfpd-workspace"] == "/kfp-workspace", task_name
    assert claims == {f"kfpd-workspace-{run['run_id']}"}
    spec = executor.specs[next(iter(executor.pods))]
    assert spec.workspace_path == f"/kfp-workspace/{run['run_id']}"
    manifest = workspace_claim_manifest(spec, "kubeflow-user", "kfpd")
    assert_valid(manifest)
    assert manifest["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "standard",
    }


OPTIONAL_INPUTS = "critical/missing_kubernetes_optional_inputs.yaml"


def _with_pod_affinity_and_ephemeral_volume(tmp_path: Path) -> Path:
    """The corpus has no pipeline with ``podAffinity`` or ``genericEphemeralVolume``: this
    one's executor config gets them, in kfp-kubernetes' IR field names, the JSON term from
    the pipeline input the corpus file gives ``nodeAffinityJson``."""
    import yaml

    spec, platform = yaml.safe_load_all((CORPUS / OPTIONAL_INPUTS).read_text())
    config = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-log-message"]
    del config["nodeAffinity"]
    config["podAffinity"] = [
        {"matchPodLabels": {"app": "cache"}, "topologyKey": "kubernetes.io/hostname"},
        {"podAffinityJson": {"componentInputParameter": "optional_affinity"}, "anti": True},
    ]
    config["genericEphemeralVolume"] = [
        {
            "volumeName": "scratch",
            "mountPath": "/scratch",
            "accessModes": ["ReadWriteOnce"],
            "size": "2Gi",
            "storageClassName": "fast",
            "metadata": {"labels": {"team": "ml"}},
        }
    ]
    path = tmp_path / "pod_affinity_ephemeral.yaml"
    path.write_text(yaml.safe_dump_all([spec, platform]))
    return path


def test_pod_affinity_and_ephemeral_volume_through_the_orchestrator(
    k8s_server: tuple[str, PodBuildingExecutor], tmp_path: Path
) -> None:
    url, executor = k8s_server
    path = _with_pod_affinity_and_ephemeral_volume(tmp_path)
    unset = _run(url, str(path))
    assert unset["state"] == "SUCCEEDED", unset
    spec = executor.pods["log-message"]["spec"]
    _main(executor.pods["log-message"])  # schema-valid
    cache = {
        "labelSelector": {"matchLabels": {"app": "cache"}},
        "topologyKey": "kubernetes.io/hostname",
    }
    assert spec["affinity"] == {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [cache]}
    }, "the JSON term of an unset optional input adds nothing"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {
        m["mountPath"]: volumes[m["name"]]
        for m in _main(executor.pods["log-message"])["volumeMounts"]
    }
    assert mounts["/scratch"]["ephemeral"]["volumeClaimTemplate"] == {
        "metadata": {"labels": {"team": "ml"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
            "storageClassName": "fast",
        },
    }

    db = {
        "labelSelector": {"matchLabels": {"app": "db"}},
        "topologyKey": "topology.kubernetes.io/zone",
    }
    given = _run(url, str(path), optional_affinity=db)
    assert given["state"] == "SUCCEEDED", given
    pod = executor.pods["log-message"]
    _main(pod)
    assert pod["spec"]["affinity"] == {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [cache]},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [db]},
    }
