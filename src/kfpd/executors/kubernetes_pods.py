"""A task's Pod (and the Secret holding its launch spec) as Kubernetes API objects (plain JSON).

Pure: the same spec always gives the same manifests, so they are tested as golden files and
validated against the Kubernetes OpenAPI schema (tests/test_kubernetes_pods.py).

The pod runs the component's image. An init container (``launcher_image``) copies kfpd's
launcher bundle (a zipapp needing only ``python3``) into an emptyDir; the main container runs
``python3 /kfpd/launcher.pyz --spec /kfpd-spec/spec.json``. The spec holds the run token, so it
is a Secret mounted read-only, never an env var or an annotation (anyone who may read pods
would see it). The kfp-kubernetes executor config arrives resolved (every ``*Parameter`` is
already its value, see ``orchestrator.platform.resolved_config``) and becomes: env from
secrets, config maps, field paths and the downward API; secret / config map / PVC / emptyDir
volumes, generic ephemeral volumes; node selector, tolerations, node affinity, pod affinity and
anti-affinity; pod labels and annotations; image pull
secrets and policy; ``activeDeadlineSeconds``; the run's service account; resources and
accelerators.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from kfpd.executors.resources import Accelerator, Requests, format_quantity, requests_of
from kfpd.schemas.launch import LaunchSpec

LABEL_RUN = "kfpd.io/run-id"
LABEL_TASK = "kfpd.io/task-id"
LABEL_MANAGED = "kfpd.io/managed-by"
ANNOTATION_TASK_NAME = "kfpd.io/task-name"
BUNDLE_DIR = "/kfpd"
BUNDLE_NAME = "launcher.pyz"
SPEC_DIR = "/kfpd-spec"
SPEC_KEY = "spec.json"
MAIN_CONTAINER = "main"
WORKSPACE_MOUNT = "/kfp-workspace"


class PodSpecError(ValueError):
    """The task's platform config cannot become a pod (the task fails with this message)."""


def pod_name(spec: LaunchSpec) -> str:
    """``<task name>-<hash of the task id>``: a valid DNS-1123 name, unique per task."""
    digest = hashlib.sha256(spec.task_id.encode()).hexdigest()[:10]
    base = re.sub(r"[^a-z0-9-]+", "-", (spec.task_name or "task").lower()).strip("-") or "task"
    return f"kfpd-{base[:40].rstrip('-')}-{digest}"


def workspace_claim(spec: LaunchSpec) -> str:
    """The run's workspace volume claim (one per run, shared by its tasks)."""
    return f"kfpd-workspace-{spec.run_id}"[:63].rstrip("-")


def workspace_claim_manifest(spec: LaunchSpec, namespace: str, manager: str) -> dict[str, Any]:
    """The claim for a run's workspace: kfp-kubernetes ``pipelineConfig.workspace`` (``size``,
    ``kubernetes.pvcSpecPatch`` merged over ReadWriteOnce)."""
    workspace = spec.kubernetes.get("workspace") or {}
    patch = (workspace.get("kubernetes") or {}).get("pvcSpecPatch") or {}
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(workspace.get("size") or "1Gi")}},
        **patch,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": workspace_claim(spec),
            "namespace": namespace,
            "labels": {LABEL_RUN: spec.run_id, LABEL_MANAGED: manager},
        },
        "spec": claim_spec,
    }


def secret_name(spec: LaunchSpec) -> str:
    return f"{pod_name(spec)}-spec"


def spec_secret(spec: LaunchSpec, *, namespace: str, manager: str) -> dict[str, Any]:
    """The Secret with the launch spec (run token included) the pod mounts."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(spec),
            "namespace": namespace,
            "labels": _own_labels(spec, manager),
        },
        "type": "Opaque",
        "stringData": {SPEC_KEY: spec.model_dump_json()},
    }


def _own_labels(spec: LaunchSpec, manager: str) -> dict[str, str]:
    return {LABEL_RUN: spec.run_id, LABEL_TASK: spec.task_id, LABEL_MANAGED: manager}


def build_pod(
    spec: LaunchSpec, *, namespace: str, launcher_image: str, manager: str = "kfpd"
) -> dict[str, Any]:
    """The task's Pod; PodSpecError when its platform config is incomplete."""
    config = spec.kubernetes
    metadata = config.get("podMetadata") or {}
    labels = {**_strings(metadata.get("labels")), **_own_labels(spec, manager)}
    annotations = {**_strings(metadata.get("annotations")), ANNOTATION_TASK_NAME: spec.task_name}
    volumes, mounts = _volumes(config)
    if config.get("workspace") and spec.workspace_path:
        claim = {"claimName": workspace_claim(spec)}
        volumes.append({"name": "kfpd-workspace", "persistentVolumeClaim": claim})
        mounts.append({"name": "kfpd-workspace", "mountPath": WORKSPACE_MOUNT})
    container: dict[str, Any] = {
        "name": MAIN_CONTAINER,
        "image": spec.container.image or "python:3.11-slim",
        "command": ["python3", f"{BUNDLE_DIR}/{BUNDLE_NAME}", "--spec", f"{SPEC_DIR}/{SPEC_KEY}"],
        "env": _env(config),
        "volumeMounts": [
            {"name": "kfpd-launcher", "mountPath": BUNDLE_DIR, "readOnly": True},
            {"name": "kfpd-spec", "mountPath": SPEC_DIR, "readOnly": True},
            *mounts,
        ],
    }
    resources = _resources(spec.resources)
    if resources:
        container["resources"] = resources
    if config.get("imagePullPolicy"):
        container["imagePullPolicy"] = str(config["imagePullPolicy"])
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "initContainers": [
            {
                "name": "kfpd-launcher",
                "image": launcher_image,
                "command": ["cp", f"{BUNDLE_DIR}/{BUNDLE_NAME}", f"/kfpd-shared/{BUNDLE_NAME}"],
                "volumeMounts": [{"name": "kfpd-launcher", "mountPath": "/kfpd-shared"}],
            }
        ],
        "containers": [container],
        "volumes": [
            {"name": "kfpd-launcher", "emptyDir": {}},
            {
                "name": "kfpd-spec",
                "secret": {"secretName": secret_name(spec), "defaultMode": 0o400},
            },
            *volumes,
        ],
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    _scheduling(config, pod_spec)
    pull_secrets = [
        {"name": name}
        for entry in config.get("imagePullSecret") or []
        if (name := _name(entry, "secretName"))
    ]
    if pull_secrets:
        pod_spec["imagePullSecrets"] = pull_secrets
    deadline = config.get("activeDeadlineSeconds")
    if deadline:
        pod_spec["activeDeadlineSeconds"] = int(deadline)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(spec),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": pod_spec,
    }


def _strings(mapping: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def _name(entry: dict[str, Any], key: str) -> str:
    """An object's name: the resolved ``<key>Parameter`` wins over the constant ``<key>``."""
    value = entry.get(f"{key}Parameter")
    if value in (None, "", {}):
        value = entry.get(key)
    return "" if value in (None, {}) else str(value)


def _required_name(entry: dict[str, Any], key: str, what: str) -> str | None:
    name = _name(entry, key)
    if not name and not entry.get("optional"):
        raise PodSpecError(f"a {what} in the task's Kubernetes config has no name")
    return name or None


def _env(config: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "KFP_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KFP_POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
    ]
    for item in config.get("fieldPathAsEnv") or []:
        env.append(
            {"name": item["name"], "valueFrom": {"fieldRef": {"fieldPath": item["fieldPath"]}}}
        )
    sources = (
        ("secretAsEnv", "secretName", "secretKey", "secretKeyRef", "secret"),
        ("configMapAsEnv", "configMapName", "configMapKey", "configMapKeyRef", "config map"),
    )
    for section, name_key, value_key, ref, what in sources:
        for entry in config.get(section) or []:
            name = _required_name(entry, name_key, what)
            if name is None:
                continue
            optional = bool(entry.get("optional"))
            for mapping in entry.get("keyToEnv") or []:
                selector = {"name": name, "key": mapping[value_key]}
                if optional:
                    selector["optional"] = True
                env.append({"name": mapping["envVar"], "valueFrom": {ref: selector}})
    return env


def _optional(source: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("optional"):
        source["optional"] = True
    return source


def _secret_volume(entry: dict[str, Any]) -> dict[str, Any] | None:
    name = _required_name(entry, "secretName", "secret volume")
    return {"secret": _optional({"secretName": name}, entry)} if name else None


def _config_map_volume(entry: dict[str, Any]) -> dict[str, Any] | None:
    name = _required_name(entry, "configMapName", "config map volume")
    return {"configMap": _optional({"name": name}, entry)} if name else None


def _pvc_volume(entry: dict[str, Any]) -> dict[str, Any] | None:
    claim = _name(entry, "pvcName") or _name(entry, "constant")
    if not claim:
        raise PodSpecError("a PVC mount in the task's Kubernetes config has no claim name")
    return {"persistentVolumeClaim": {"claimName": claim}}


def _empty_dir_volume(entry: dict[str, Any]) -> dict[str, Any] | None:
    empty = {k: entry[k] for k in ("medium", "sizeLimit") if entry.get(k)}
    return {"emptyDir": empty}


_ACCESS_MODES = {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}


def _ephemeral_volume(entry: dict[str, Any]) -> dict[str, Any] | None:
    """``genericEphemeralVolume``: a claim the cluster creates with the pod and deletes with it
    (``ephemeral.volumeClaimTemplate``)."""
    modes = [str(mode) for mode in entry.get("accessModes") or []]
    if not modes or not entry.get("size"):
        raise PodSpecError("a generic ephemeral volume needs accessModes and a size")
    unknown = sorted(set(modes) - _ACCESS_MODES)
    if unknown:
        raise PodSpecError(f"generic ephemeral volume: unknown access mode(s) {unknown}")
    claim_spec: dict[str, Any] = {
        "accessModes": modes,
        "resources": {"requests": {"storage": str(entry["size"])}},
    }
    # As upstream: unless defaultStorageClass, the class is the one named, "" (no dynamic
    # provisioning, bind to an existing volume) when none is.
    if not entry.get("defaultStorageClass"):
        claim_spec["storageClassName"] = str(entry.get("storageClassName") or "")
    template: dict[str, Any] = {"spec": claim_spec}
    metadata = entry.get("metadata") or {}
    claim_metadata = {
        key: _strings(metadata.get(key)) for key in ("labels", "annotations") if metadata.get(key)
    }
    if claim_metadata:
        template["metadata"] = claim_metadata
    return {"ephemeral": {"volumeClaimTemplate": template}}


# kfp-kubernetes config key -> the pod volume one of its entries becomes (None: no volume).
_VOLUME_KINDS: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any] | None]], ...] = (
    ("secretAsVolume", _secret_volume),
    ("configMapAsVolume", _config_map_volume),
    ("pvcMount", _pvc_volume),
    ("emptyDirMounts", _empty_dir_volume),
    ("genericEphemeralVolume", _ephemeral_volume),
)


def _volumes(config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []

    def add(volume: dict[str, Any], mount_path: str, sub_path: str = "") -> None:
        name = f"kfpd-vol-{len(volumes)}"
        volumes.append({"name": name, **volume})
        mount = {"name": name, "mountPath": mount_path}
        if sub_path:  # pvcMount's subPath: a folder of the volume, not its root
            mount["subPath"] = sub_path
        mounts.append(mount)

    for key, build in _VOLUME_KINDS:
        for entry in config.get(key) or []:
            volume = build(entry)
            if volume is not None:
                add(volume, entry["mountPath"], str(entry.get("subPath") or ""))
    shared_memory = config.get("enabledSharedMemory")
    if shared_memory is not None:
        dshm: dict[str, Any] = {"medium": "Memory"}
        if shared_memory.get("size"):
            dshm["sizeLimit"] = shared_memory["size"]
        add({"emptyDir": dshm}, "/dev/shm")
    return volumes, mounts


def _json_value(value: Any, what: str) -> Any:
    """A ``*Json`` field: resolved from a parameter, it may still be JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise PodSpecError(f"{what} is not JSON: {value[:100]!r}") from None
    return value


def _scheduling(config: dict[str, Any], pod_spec: dict[str, Any]) -> None:
    selector = config.get("nodeSelector") or {}
    labels = _strings(selector.get("labels"))
    from_json = _json_value(selector.get("nodeSelectorJson"), "nodeSelectorJson")
    if isinstance(from_json, dict):
        labels.update(_strings(from_json))
    if labels:
        pod_spec["nodeSelector"] = labels
    tolerations = []
    for entry in config.get("tolerations") or []:
        from_json = _json_value(entry.get("tolerationJson"), "tolerationJson")
        if from_json:
            tolerations += from_json if isinstance(from_json, list) else [from_json]
            continue
        toleration = {
            k: entry[k] for k in ("key", "operator", "value", "effect") if entry.get(k) is not None
        }
        if entry.get("tolerationSeconds") is not None:
            toleration["tolerationSeconds"] = int(entry["tolerationSeconds"])
        if toleration:
            tolerations.append(toleration)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    affinity: dict[str, Any] = {}
    node_affinity = _node_affinity(config.get("nodeAffinity") or [])
    if node_affinity:
        affinity["nodeAffinity"] = node_affinity
    affinity.update(_pod_affinity(config.get("podAffinity") or []))
    if affinity:
        pod_spec["affinity"] = affinity


def _label_selector(expressions: Any, labels: Any) -> dict[str, Any] | None:
    """kfp-kubernetes ``match*Expressions`` / ``match*Labels`` as a Kubernetes LabelSelector."""
    selector: dict[str, Any] = {}
    if expressions:
        selector["matchExpressions"] = [
            {k: item[k] for k in ("key", "operator", "values") if item.get(k)}
            for item in expressions
        ]
    if labels:
        selector["matchLabels"] = _strings(labels)
    return selector or None


def _pod_affinity_term(entry: dict[str, Any]) -> dict[str, Any] | None:
    if "podAffinityJson" in entry:
        from_json = _json_value(entry["podAffinityJson"], "podAffinityJson")
        # A parameter left unset (optional input) resolves to None: no term, as upstream
        # skips a null.
        if not from_json:
            return None
        if not isinstance(from_json, dict):
            raise PodSpecError("podAffinityJson is not a PodAffinityTerm object")
        term = dict(from_json)
    else:
        term = {}
        pods = _label_selector(entry.get("matchPodExpressions"), entry.get("matchPodLabels"))
        if pods:
            term["labelSelector"] = pods
        if entry.get("namespaces"):
            term["namespaces"] = [str(n) for n in entry["namespaces"]]
        spaces = _label_selector(
            entry.get("matchNamespaceExpressions"), entry.get("matchNamespaceLabels")
        )
        if spaces:
            term["namespaceSelector"] = spaces
        if entry.get("topologyKey"):
            term["topologyKey"] = str(entry["topologyKey"])
    # The API rejects a term without one; say so before the pod is even sent.
    if not term.get("topologyKey"):
        raise PodSpecError("a pod affinity term in the task's Kubernetes config has no topologyKey")
    return term


def _pod_affinity(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``podAffinity`` terms: ``anti`` picks podAntiAffinity, a ``weight`` makes the term
    preferred (weighted) instead of required."""
    out: dict[str, Any] = {}
    for entry in entries:
        term = _pod_affinity_term(entry)
        if term is None:
            continue
        kind = out.setdefault("podAntiAffinity" if entry.get("anti") else "podAffinity", {})
        weight = entry.get("weight")
        if weight is not None:
            weight = int(weight)
            if not 1 <= weight <= 100:
                raise PodSpecError(f"pod affinity weight must be 1..100, got {weight}")
            preferred = kind.setdefault("preferredDuringSchedulingIgnoredDuringExecution", [])
            preferred.append({"weight": weight, "podAffinityTerm": term})
        else:
            kind.setdefault("requiredDuringSchedulingIgnoredDuringExecution", []).append(term)
    return out


def _node_affinity(entries: list[dict[str, Any]]) -> dict[str, Any]:
    required: list[dict[str, Any]] = []
    preferred: list[dict[str, Any]] = []
    for entry in entries:
        from_json = _json_value(entry.get("nodeAffinityJson"), "nodeAffinityJson")
        if isinstance(from_json, dict) and from_json:
            for term in (from_json.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
                "nodeSelectorTerms"
            ) or []:
                required.append(term)
            preferred += from_json.get("preferredDuringSchedulingIgnoredDuringExecution") or []
            continue
        term = {k: entry[k] for k in ("matchExpressions", "matchFields") if entry.get(k)}
        if not term:
            continue
        if entry.get("weight"):
            preferred.append({"weight": int(entry["weight"]), "preference": term})
        else:
            required.append(term)
    affinity: dict[str, Any] = {}
    if required:
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required}
    if preferred:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return affinity


def _accelerator_resource(accelerator: Accelerator) -> str:
    if "/" in accelerator.type:
        return accelerator.type
    return "nvidia.com/gpu" if accelerator.is_gpu else accelerator.type


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    try:
        requests: Requests = requests_of(resources)
    except ValueError as exc:
        raise PodSpecError(str(exc)) from None
    out: dict[str, dict[str, str]] = {}
    for kind, request, limit in (
        ("cpu", requests.cpu_request, requests.cpu_limit),
        ("memory", requests.memory_request, requests.memory_limit),
    ):
        if request:
            out.setdefault("requests", {})[kind] = request
        if limit:
            out.setdefault("limits", {})[kind] = limit
    if requests.accelerator is not None:
        count = format_quantity(requests.accelerator.count)
        out.setdefault("limits", {})[_accelerator_resource(requests.accelerator)] = count
    return dict(out)
