"""deploy/kubernetes: every manifest valid against the Kubernetes API schema (strict), the
kustomization complete, RBAC granting exactly what the Kubernetes executor calls, and the
server wired to PostgreSQL and the executor. (Nothing is applied: no cluster exists here.)"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfpd.executors import kubernetes_executor
from kfpd.executors.kubernetes_pods import build_pod
from tests.kube import assert_valid, launch_spec

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((KUSTOMIZE / name).read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    files = {p.name for p in KUSTOMIZE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize("index", range(len(_documents())))
def test_manifest_is_valid(index: int) -> None:
    assert_valid(_documents()[index])


def _api_calls() -> set[str]:
    """The CoreV1Api methods the executor calls (self._core.<method>)."""
    tree = ast.parse(inspect.getsource(kubernetes_executor))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_core"
    }


VERB = {"create": "create", "delete": "delete", "patch": "patch", "list": "list", "read": "get"}


def test_rbac_allows_every_call_the_executor_makes() -> None:
    role = _one("Role", "kfpd-executor")
    granted = {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    calls = _api_calls()
    assert calls, "found no API calls in the executor"
    for call in calls:
        verb, _, rest = call.partition("_")
        resource = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
        resource = resource.replace("_", "") + "s"
        assert (resource, VERB[verb]) in granted, call
    assert ("pods", "watch") in granted  # the one watch over the pods
    binding = _one("RoleBinding", "kfpd-executor")
    assert binding["subjects"][0]["name"] == "kfpd"


def test_server_runs_the_kubernetes_executor_on_postgresql() -> None:
    deployment = _one("Deployment", "kfpd")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kfpd"
    (container,) = pod["containers"]
    assert container["args"] == ["--executor", "kubernetes"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KFPD_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "kfpd-db"
    db_url = _one("Secret", "kfpd-db")["stringData"]["KFPD_DB_URL"]
    assert db_url.startswith("postgresql+psycopg://") and "@kfpd-postgres:5432/" in db_url
    config = _one("ConfigMap", "kfpd")["data"]
    assert config["KFPD_PUBLIC_URL"] == "http://kfpd.kubeflow.svc:8888"
    service = _one("Service", "kfpd")
    assert service["spec"]["ports"][0]["port"] == 8888


def test_dockerfile_builds_the_server_and_the_launcher_bundle_image() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "AS server" in text and "AS launcher" in text
    assert "kfpd launcher-bundle /out/launcher.pyz" in text
    # The init container of every task pod copies exactly that file.
    pod = build_pod(launch_spec(), namespace="kubeflow", launcher_image="kfpd-launcher:0.1.0")
    (init,) = pod["spec"]["initContainers"]
    assert init["command"][1] == "/kfpd/launcher.pyz"
    assert "COPY --from=build /out/launcher.pyz /kfpd/launcher.pyz" in text


def test_dockerfile_has_a_task_image_with_kfpds_s3_support() -> None:
    """The bundle hands s3:// tasks over to an installed kfpd of its own version
    (tests/test_launcher_bundle.py): the task image installs exactly the wheel built with it."""
    text = (DEPLOY / "Dockerfile").read_text()
    task = text[text.index("AS task") :]
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /out/wheels ." in text
    assert "COPY --from=build /out/wheels /tmp/wheels" in task
    assert '"$(ls /tmp/wheels/kfpd-*.whl)[s3,sdk]"' in task
