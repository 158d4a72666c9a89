"""Helpers for the Kubernetes tests: schema validation and launch specs for pod builders.

There is no Kubernetes cluster on these machines (no kube-apiserver in any reachable package
registry): manifests are checked against the Kubernetes OpenAPI schema
(``kubernetes-validate``, strict: unknown fields are errors) instead."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from kfpd.schemas.launch import ContainerSpec, LaunchSpec

K8S_VERSION = "1.30.0"


def assert_valid(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def launch_spec(**fields: Any) -> LaunchSpec:
    base: dict[str, Any] = {
        "server_url": "http://kfpd.kubeflow.svc:8888",
        "token": "run-token-secret-value",
        "run_id": "6f1c2a9e-0000-4000-8000-000000000001",
        "task_id": "0b7d1c2e-0000-4000-8000-0000000000aa",
        "task_name": "train-model",
        "pipeline_root": "s3://bucket/root",
        "container": ContainerSpec(image="python:3.11", command=["python3", "-c", "print(1)"]),
    }
    return LaunchSpec(**{**base, **fields})
