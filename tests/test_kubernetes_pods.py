"""Pod manifests the Kubernetes executor creates, one golden file per platform feature
(tests/k8s/*.json), each validated against the Kubernetes OpenAPI schema (strict).

Regenerate the goldens after an intended change: ``KFPD_UPDATE_GOLDENS=1 pytest
tests/test_kubernetes_pods.py`` (then review the diff)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from kfpd.executors.kubernetes_pods import (
    PodSpecError,
    build_pod,
    pod_name,
    spec_secret,
)
from tests.kube import assert_valid, launch_spec

GOLDEN = Path(__file__).parent / "k8s"
IMAGE = "ghcr.io/example/kfpd-launcher:0.1.0"

# One task config per kfp-kubernetes feature, as the orchestrator hands it over (resolved).
FEATURES: dict[str, dict[str, Any]] = {
    "plain": {},
    "resources": {
        "resources": {
            "resourceCpuRequest": "500m",
            "resourceCpuLimit": "2",
            "resourceMemoryRequest": "256Mi",
            "resourceMemoryLimit": "1Gi",
            "accelerator": {"resourceType": "nvidia.com/gpu", "resourceCount": "1"},
        }
    },
    "secrets_and_config_maps": {
        "kubernetes": {
            "secretAsEnv": [
                {"secretName": "db", "keyToEnv": [{"secretKey": "password", "envVar": "DB_PW"}]},
                {
                    "secretNameParameter": "dyn-secret",
                    "optional": True,
                    "keyToEnv": [{"secretKey": "token", "envVar": "TOKEN"}],
                },
            ],
            "secretAsVolume": [{"secretName": "certs", "mountPath": "/certs"}],
            "configMapAsEnv": [
                {"configMapName": "cfg", "keyToEnv": [{"configMapKey": "mode", "envVar": "MODE"}]}
            ],
            "configMapAsVolume": [
                {"configMapName": "cfg", "mountPath": "/etc/cfg", "optional": True}
            ],
        }
    },
    "volumes": {
        "kubernetes": {
            "pvcMount": [
                {"pvcNameParameter": "my-pvc", "mountPath": "/data"},
                {"constant": "old-style-pvc", "mountPath": "/old"},
                {"pvcNameParameter": "shared", "mountPath": "/models", "subPath": "team-a/models"},
            ],
            "emptyDirMounts": [
                {"volumeName": "scratch", "mountPath": "/scratch", "medium": "Memory"}
            ],
            "enabledSharedMemory": {"volumeName": "shm", "size": "1Gi"},
        }
    },
    "scheduling": {
        "kubernetes": {
            "nodeSelector": {"labels": {"accelerator": "a100"}},
            "tolerations": [
                {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"},
                {"tolerationJson": {"key": "spot", "operator": "Exists"}},
            ],
            "nodeAffinity": [
                {
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["eu-1a", "eu-1b"]}
                    ]
                },
                {
                    "weight": 50,
                    "matchExpressions": [{"key": "ssd", "operator": "Exists"}],
                },
            ],
        }
    },
    "pod_affinity": {
        "kubernetes": {
            "podAffinity": [
                {
                    "matchPodLabels": {"app": "cache"},
                    "topologyKey": "kubernetes.io/hostname",
                },
                {
                    "matchPodExpressions": [
                        {"key": "security", "operator": "In", "values": ["S1", "S2"]}
                    ],
                    "namespaces": ["team-a", "team-b"],
                    "matchNamespaceLabels": {"tier": "ml"},
                    "topologyKey": "topology.kubernetes.io/zone",
                    "weight": 10,
                },
                {
                    "matchPodExpressions": [{"key": "role", "operator": "Exists"}],
                    "matchNamespaceExpressions": [
                        {"key": "env", "operator": "NotIn", "values": ["dev"]}
                    ],
                    "topologyKey": "kubernetes.io/hostname",
                    "anti": True,
                },
                {
                    "podAffinityJson": {
                        "labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": "topology.kubernetes.io/zone",
                    },
                    "anti": True,
                    "weight": 100,
                },
                {"podAffinityJson": None},
            ],
            "nodeAffinity": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["eu-1a"]}]}
            ],
        }
    },
    "ephemeral_volumes": {
        "kubernetes": {
            "genericEphemeralVolume": [
                {
                    "volumeName": "scratch",
                    "mountPath": "/scratch",
                    "accessModes": ["ReadWriteOnce"],
                    "size": "5Gi",
                    "storageClassName": "fast-ssd",
                    "metadata": {
                        "labels": {"team": "ml"},
                        "annotations": {"backup": "false"},
                    },
                },
                {
                    "volumeName": "cache",
                    "mountPath": "/cache",
                    "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
                    "size": "1Gi",
                    "defaultStorageClass": True,
                },
            ],
        }
    },
    "pod_metadata_and_field_paths": {
        "kubernetes": {
            "podMetadata": {"labels": {"team": "ml"}, "annotations": {"owner": "ana"}},
            "fieldPathAsEnv": [
                {"name": "MY_TEAM", "fieldPath": "metadata.labels['team']"},
                {"name": "MY_NS", "fieldPath": "metadata.namespace"},
            ],
        }
    },
    "images_timeouts_accounts": {
        "service_account": "pipeline-runner",
        "kubernetes": {
            "imagePullSecret": [{"secretName": "regcred"}, {"secretNameParameter": "dyn-reg"}],
            "imagePullPolicy": "Always",
            "activeDeadlineSeconds": "3600",
        },
    },
}


def _pod(**fields: Any) -> dict[str, Any]:
    return build_pod(launch_spec(**fields), namespace="team-a", launcher_image=IMAGE)


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_pod_manifest_matches_its_golden_and_the_api_schema(feature: str) -> None:
    pod = _pod(**FEATURES[feature])
    assert_valid(pod)
    path = GOLDEN / f"pod_{feature}.json"
    text = json.dumps(pod, indent=2, sort_keys=True) + "\n"
    if os.environ.get("KFPD_UPDATE_GOLDENS") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"pod manifest differs from {path}"


def test_every_pod_runs_the_bundle_with_the_spec_from_a_secret() -> None:
    spec = launch_spec()
    pod = build_pod(spec, namespace="team-a", launcher_image=IMAGE)
    secret = spec_secret(spec, namespace="team-a", manager="kfpd")
    assert_valid(secret)
    assert "run-token-secret-value" not in json.dumps(pod), "the token is in the Secret only"
    assert "run-token-secret-value" in secret["stringData"]["spec.json"]
    (main,) = pod["spec"]["containers"]
    assert main["image"] == "python:3.11"
    assert main["command"][:2] == ["python3", "/kfpd/launcher.pyz"]
    (init,) = pod["spec"]["initContainers"]
    assert init["image"] == IMAGE
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["kfpd-launcher"] == {"name": "kfpd-launcher", "emptyDir": {}}
    assert volumes["kfpd-spec"]["secret"]["secretName"] == secret["metadata"]["name"]
    env = {e["name"]: e for e in main["env"]}
    assert env["KFP_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["KFP_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    labels = pod["metadata"]["labels"]
    assert labels["kfpd.io/task-id"] == spec.task_id
    assert labels["kfpd.io/run-id"] == spec.run_id
    assert pod["spec"]["restartPolicy"] == "Never"


def test_the_schema_check_catches_a_wrong_field() -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagee"):
        assert_valid(pod)


def test_pod_names_are_dns_labels_unique_per_task() -> None:
    long = launch_spec(task_name="A_Very Long Task Name " * 5)
    name = pod_name(long)
    assert len(name) <= 63 and name == name.lower()
    assert pod_name(launch_spec(task_id="other")) != pod_name(launch_spec())


def test_incomplete_platform_config_is_refused_with_a_message() -> None:
    missing = {"secretAsEnv": [{"keyToEnv": [{"secretKey": "k", "envVar": "V"}]}]}
    with pytest.raises(PodSpecError, match=r"secret .* has no name"):
        _pod(kubernetes=missing)
    optional = {
        "secretAsEnv": [{"optional": True, "keyToEnv": [{"secretKey": "k", "envVar": "V"}]}]
    }
    assert "V" not in {e["name"] for e in _pod(kubernetes=optional)["spec"]["containers"][0]["env"]}
    with pytest.raises(PodSpecError, match="PVC mount"):
        _pod(kubernetes={"pvcMount": [{"mountPath": "/data"}]})
    with pytest.raises(PodSpecError, match="topologyKey"):
        _pod(kubernetes={"podAffinity": [{"matchPodLabels": {"app": "x"}}]})
    with pytest.raises(PodSpecError, match=r"weight must be 1\.\.100"):
        _pod(kubernetes={"podAffinity": [{"topologyKey": "zone", "weight": 0}]})
    with pytest.raises(PodSpecError, match="podAffinityJson is not JSON"):
        _pod(kubernetes={"podAffinity": [{"podAffinityJson": "{oops"}]})
    ephemeral = {"volumeName": "v", "mountPath": "/v", "size": "1Gi"}
    with pytest.raises(PodSpecError, match="accessModes and a size"):
        _pod(kubernetes={"genericEphemeralVolume": [ephemeral]})
    with pytest.raises(PodSpecError, match="unknown access mode"):
        _pod(kubernetes={"genericEphemeralVolume": [{**ephemeral, "accessModes": ["RWO"]}]})
    with pytest.raises(PodSpecError, match="task resources"):
        _pod(resources={"resourceCpuLimit": "many"})
