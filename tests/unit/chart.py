"""Rendering the Helm chart for tests, by the real Helm engine (the Go SDK via
helm-python-sdk), with the values files of deploy/helm/values/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.requirements import require_module

helm = require_module("helm_python", "dev extra: helm-python-sdk")

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "alignstream"
VALUES = ROOT / "deploy" / "helm" / "values"
Manifests = list[dict[str, Any]]


def render(values: dict[str, Any] | None = None, *files: str) -> Manifests:
    merged: dict[str, Any] = {}
    for name in files:
        merged = deep_merge(merged, yaml.safe_load((VALUES / name).read_text()))
    merged = deep_merge(merged, values or {})
    rendered = render_files(merged)
    return [doc for name, text in rendered.items() if not name.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]  # fmt: skip


def render_files(values: dict[str, Any]) -> dict[str, str]:
    """Each template's rendered text by its path (NOTES.txt included)."""
    rendered: dict[str, str] = helm.Chart.load(str(CHART)).render(
        values, name="rel", namespace="prod"
    )
    return rendered


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def of_kind(docs: Manifests, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


VALUE_SETS = [[], ["gpu.yaml"], ["gpu.yaml", "gke.yaml"], ["gpu.yaml", "gpu-operator.yaml"],
              ["external.yaml"], ["autoscaling.yaml"], ["cpu.yaml"],
              ["external.yaml", "gpu.yaml", "gke.yaml", "autoscaling.yaml"]]  # fmt: skip
"""Every bundled value set (and the combinations a GPU cluster uses)."""


def set_id(files: list[str]) -> str:
    return "+".join(files) or "defaults"


def pod_specs(docs: Manifests) -> dict[str, dict[str, Any]]:
    """Each workload's pod spec by kind/name (Deployments, StatefulSets, Jobs, the test Pod)."""
    kinds = ("Deployment", "StatefulSet", "Job")
    pods = {f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
            for d in docs if d["kind"] in kinds}  # fmt: skip
    pods.update({f"Pod/{d['metadata']['name']}": d["spec"] for d in docs if d["kind"] == "Pod"})
    return pods


def pod_labels(docs: Manifests) -> dict[str, dict[str, str]]:
    kinds = ("Deployment", "StatefulSet", "Job")
    labels = {f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["metadata"]["labels"]
              for d in docs if d["kind"] in kinds}  # fmt: skip
    labels.update({f"Pod/{d['metadata']['name']}": d["metadata"]["labels"]
                   for d in docs if d["kind"] == "Pod"})  # fmt: skip
    return labels
