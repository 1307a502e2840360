"""The chart as a platform engineer would run it: hardened pods, NetworkPolicies, secrets only
through Secrets, KEDA that can read lag, lifecycle budgets that fit the services' own, and a
compose stack with passwords. Each test here fails on the chart before issue 20."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml

from services.gateway.settings import GatewaySettings
from services.generation.settings import GenerationSettings
from shared.service import PHASE_FLOOR_S
from tests.unit.chart import (
    ROOT,
    VALUE_SETS,
    container,
    helm,
    of_kind,
    pod_labels,
    pod_specs,
    render,
    render_files,
    set_id,
)

SERVICES = ("ingest", "retrieval", "grading", "generation", "gateway")


def env_of(box: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in box.get("env", [])}


@pytest.mark.parametrize("files", VALUE_SETS, ids=set_id)
def test_every_container_runs_unprivileged_on_a_read_only_root(files: list[str]) -> None:
    for name, pod in pod_specs(render(None, *files)).items():
        writable = {v["name"] for v in pod.get("volumes", [])}
        for box in pod["containers"]:
            security = box["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["runAsNonRoot"] is True, name
            assert security["runAsUser"] >= 10000, name
            mounts = {m["mountPath"]: m["name"] for m in box.get("volumeMounts", [])}
            assert mounts.get("/tmp") in writable, name  # scratch stays writable
            home = env_of(box).get("HOME", {}).get("value")
            if name.startswith("Deployment/"):  # caches under $HOME and XDG_CACHE_HOME
                assert mounts.get(home) == "cache", name
                assert env_of(box)["XDG_CACHE_HOME"]["value"] == home, name


@pytest.mark.parametrize("files", VALUE_SETS, ids=set_id)
def test_every_pod_has_a_network_policy_and_the_stores_admit_only_the_release(
    files: list[str],
) -> None:
    docs = render(None, *files)
    policies = of_kind(docs, "NetworkPolicy")
    for name, labels in pod_labels(docs).items():
        selectors = [p["spec"]["podSelector"]["matchLabels"] for p in policies.values()]
        selecting = [s for s in selectors if s.items() <= labels.items()]
        assert selecting, f"no NetworkPolicy selects {name}"
    release = {"app.kubernetes.io/name": "alignstream", "app.kubernetes.io/instance": "rel"}
    scaled = bool(of_kind(docs, "ScaledObject"))
    for store, port in (("kafka", 9092), ("redis", 6379)):
        policy = policies.get(f"rel-alignstream-{store}")
        if policy is None:
            assert f"rel-alignstream-{store}" not in of_kind(docs, "StatefulSet")
            continue
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": port}]
        sources = rule["from"]
        assert sources[0] == {"podSelector": {"matchLabels": release}}
        extra = sources[1:]
        if store == "kafka" and scaled:  # KEDA's operator reads lag
            assert extra == [{"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]  # fmt: skip
        else:
            assert extra == []


def test_the_bundled_redis_requires_the_password_the_services_are_given() -> None:
    docs = render()
    secrets = of_kind(docs, "Secret")
    password = base64.b64decode(secrets["rel-alignstream-redis-auth"]["data"]["redis-password"])
    assert len(password) >= 32
    # The address alone: no credential is rendered into the URL's Secret.
    url = secrets["rel-alignstream-redis-url"]["stringData"]["redis-url"]
    assert url == "redis://rel-alignstream-redis:6379/0"
    auth = {"secretKeyRef": {"name": "rel-alignstream-redis-auth", "key": "redis-password"}}
    for deployment in of_kind(docs, "Deployment").values():
        assert env_of(container(deployment))["ALIGNSTREAM_REDIS_PASSWORD"]["valueFrom"] == auth
    redis = container(of_kind(docs, "StatefulSet")["rel-alignstream-redis"])
    env = env_of(redis)
    assert env["REDIS_ARGS"]["value"].startswith("--requirepass $(REDIS_PASSWORD) ")
    for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):  # the server, and the probes' client
        assert env[name]["valueFrom"] == auth
    assert redis["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    # A given Secret replaces the generated one (`helm template` renders the same manifests).
    given = render({"redis": {"passwordSecret": "redis-pw"}})
    assert "rel-alignstream-redis-auth" not in of_kind(given, "Secret")
    ingest = env_of(container(of_kind(given, "Deployment")["rel-alignstream-ingest"]))
    assert ingest["ALIGNSTREAM_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-pw"
    # An external URL carries its own password: nothing else is added.
    external = of_kind(render(None, "external.yaml"), "Deployment")["rel-alignstream-ingest"]
    assert "ALIGNSTREAM_REDIS_PASSWORD" not in env_of(container(external))


@pytest.mark.parametrize("name", ["ALIGNSTREAM_JUDGE_API_KEY", "HF_TOKEN", "DB_PASSWORD",
                                  "ALIGNSTREAM_KAFKA_RULE_SIGNING_KEY", "my_secret"])  # fmt: skip
def test_plain_env_refuses_keys_tokens_and_passwords(name: str) -> None:
    for values in ({"env": {name: "x"}}, {"services": {"grading": {"env": {name: "x"}}}}):
        with pytest.raises(helm.HelmError, match=f"invalid propertyName '{name}'"):
            render(values)


def test_secrets_reach_the_pods_by_reference_only() -> None:
    judge = {"name": "ALIGNSTREAM_JUDGE_API_KEY", "secretName": "judge", "key": "api-key"}
    token = {"name": "HF_TOKEN", "secretName": "hf", "key": "token", "optional": True}
    docs = render({"secretEnv": [judge], "env": {"ALIGNSTREAM_GATEWAY_DEFAULT_MAX_TOKENS": 64},
                   "services": {"generation": {"secretEnv": [token]}}})  # fmt: skip
    for name, deployment in of_kind(docs, "Deployment").items():
        env = env_of(container(deployment))
        assert env[judge["name"]]["valueFrom"] == {
            "secretKeyRef": {"name": "judge", "key": "api-key"}}  # fmt: skip
        if name.endswith("generation"):
            assert env["HF_TOKEN"]["valueFrom"] == {
                "secretKeyRef": {"name": "hf", "key": "token", "optional": True}}  # fmt: skip
        else:
            assert "HF_TOKEN" not in env
    settings = of_kind(docs, "ConfigMap")["rel-alignstream-settings"]["data"]
    assert not [k for k in settings if re.search(r"(KEY|TOKEN|PASSWORD|SECRET)$", k)]


def test_images_can_be_pinned_by_digest() -> None:
    digest = "sha256:" + "ab" * 32
    docs = render({"image": {"digest": digest, "tag": "ignored"},
                   "generationImage": {"digest": digest}})  # fmt: skip
    for deployment in of_kind(docs, "Deployment").values():
        assert container(deployment)["image"].endswith(f"@{digest}")
    assert (
        "checkov.io/skip4"
        not in of_kind(docs, "Deployment")["rel-alignstream-ingest"]["metadata"]["annotations"]
    )  # the tag-pin finding is skipped only without a digest
    with pytest.raises(helm.HelmError, match="digest"):
        render({"image": {"digest": "latest"}})


def test_dockerfiles_pin_their_base_images() -> None:
    for dockerfile in (ROOT / "deploy" / "docker").glob("Dockerfile*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM"):
                image = line.split()[1]
                assert "@sha256:" in image or re.search(r":v?\d+\.\d+\.\d+", image), line


def test_keda_reads_lag_with_the_services_credentials_on_a_secured_cluster() -> None:
    docs = render(None, "external.yaml", "autoscaling.yaml")
    (auth,) = of_kind(docs, "TriggerAuthentication").values()
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs["password"] == ("alignstream-kafka", "sasl-password")
    assert refs["ca"] == ("alignstream-kafka-tls", "ca.crt")
    settings = of_kind(docs, "Secret")["rel-alignstream-keda-kafka"]["stringData"]
    assert settings == {"sasl": "scram_sha512", "username": "alignstream", "tls": "enable"}
    for scaled in of_kind(docs, "ScaledObject").values():
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "kafka":
                assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    # Plaintext (the bundled broker): nothing to authenticate with.
    plain = render(None, "autoscaling.yaml")
    assert of_kind(plain, "TriggerAuthentication") == {}
    assert of_kind(plain, "NetworkPolicy")["rel-alignstream-kafka"]  # KEDA admitted (above)


def test_generation_scales_before_its_pods_are_full_never_on_its_own_window() -> None:
    docs = render(None, "autoscaling.yaml")
    spec = of_kind(docs, "ScaledObject")["rel-alignstream-generation"]["spec"]
    kafka = next(t for t in spec["triggers"] if t["type"] == "kafka")
    window = GenerationSettings().max_in_flight
    assert int(kafka["metadata"]["lagThreshold"]) >= window  # in-flight requests count as lag
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 1}
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 600  # a GPU pod is slow to load
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    retrieval = of_kind(docs, "ScaledObject")["rel-alignstream-retrieval"]["spec"]
    assert retrieval["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 300}}  # fmt: skip
    with pytest.raises(helm.HelmError, match="lagThreshold must be at least maxInFlight"):
        render({"services": {"generation": {"autoscaling": {"lagThreshold": 100}}}},
               "autoscaling.yaml")  # fmt: skip


def test_a_shared_read_only_cache_is_mounted_read_only_and_loaded_offline() -> None:
    pod = of_kind(render(None, "gpu.yaml"), "Deployment")["rel-alignstream-generation"]
    box = container(pod)
    (models,) = [m for m in box["volumeMounts"] if m["mountPath"] == "/models"]
    assert models["readOnly"] is True
    env = env_of(box)
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    claim = next(v for v in pod["spec"]["template"]["spec"]["volumes"] if v["name"] == "models")
    assert claim["persistentVolumeClaim"]["readOnly"] is True
    # The chart's own claim is where the weights are downloaded once: writable, online.
    own = container(of_kind(render(), "Deployment")["rel-alignstream-generation"])
    assert "readOnly" not in next(m for m in own["volumeMounts"] if m["mountPath"] == "/models")
    assert "HF_HUB_OFFLINE" not in env_of(own)
    pinned = render({"services": {"generation": {"revision": "0a1b2c3"}}})
    env = env_of(container(of_kind(pinned, "Deployment")["rel-alignstream-generation"]))
    assert env["ALIGNSTREAM_VLLM_REVISION"]["value"] == "0a1b2c3"


def test_grace_periods_cover_each_services_shutdown_and_its_requests() -> None:
    docs = render()
    for name in SERVICES:
        deployment = of_kind(docs, "Deployment")[f"rel-alignstream-{name}"]
        pod = deployment["spec"]["template"]["spec"]
        env = env_of(container(deployment))
        budget = float(env[f"ALIGNSTREAM_{name.upper()}_SHUTDOWN_TIMEOUT_S"]["value"])
        # The budget, then the broker stop, the close and the trace export (a floor each).
        assert pod["terminationGracePeriodSeconds"] >= budget + 3 * PHASE_FLOOR_S, name
    for name, settings in (("generation", GenerationSettings()), ("gateway", GatewaySettings())):
        env = env_of(container(of_kind(docs, "Deployment")[f"rel-alignstream-{name}"]))
        timeout = float(env[f"ALIGNSTREAM_{name.upper()}_REQUEST_TIMEOUT_S"]["value"])
        budget = float(env[f"ALIGNSTREAM_{name.upper()}_SHUTDOWN_TIMEOUT_S"]["value"])
        assert budget >= timeout + 5, name  # requests in flight finish within the drain
        assert settings.shutdown_timeout_s >= settings.request_timeout_s  # so do the defaults
        with pytest.raises(helm.HelmError, match="shutdownTimeoutSeconds must be at least"):
            render({"services": {name: {"shutdownTimeoutSeconds": 60}}})


@pytest.mark.parametrize("name", ["ingest", "retrieval"])
def test_start_up_budgets_cover_the_wait_for_the_rule_memory(name: str) -> None:
    service = container(of_kind(render(), "Deployment")[f"rel-alignstream-{name}"])
    wait = float(env_of(service)[f"ALIGNSTREAM_{name.upper()}_MEMORY_READY_TIMEOUT_S"]["value"])
    budget = service["startupProbe"]["failureThreshold"] * service["startupProbe"][
        "periodSeconds"]  # fmt: skip
    assert wait >= 600  # the service's default
    assert budget >= wait + 60
    assert service["livenessProbe"]["httpGet"]["path"] == "/healthz"
    smaller = render({"services": {name: {"startupFailureThreshold": 20}}})
    shrunk = container(of_kind(smaller, "Deployment")[f"rel-alignstream-{name}"])
    assert env_of(shrunk)[f"ALIGNSTREAM_{name.upper()}_MEMORY_READY_TIMEOUT_S"]["value"] == "140"


def test_the_topics_job_has_a_deadline_and_fails_on_partition_drift() -> None:
    (job,) = of_kind(render(), "Job").values()
    assert job["spec"]["activeDeadlineSeconds"] == 600
    args = container(job)["args"]
    assert args[:3] == ["topics", "create", "--strict"]
    assert float(args[args.index("--timeout") + 1]) < job["spec"]["activeDeadlineSeconds"]


def test_helm_test_checks_every_enabled_service_and_the_notes_say_how() -> None:
    docs = render({"services": {"grading": {"enabled": False}}})
    (pod,) = of_kind(docs, "Pod").values()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = pod["spec"]["containers"][0]["args"][1:]
    assert urls == [f"http://rel-alignstream-{n}:9100/readyz"
                    for n in sorted(SERVICES) if n != "grading"]  # fmt: skip
    notes = next(t for n, t in render_files({}).items() if n.endswith("NOTES.txt"))
    assert "helm test rel -n prod" in notes
    assert "tenants create-key --tenant" in notes


def test_compose_takes_passwords_from_the_env_file_and_has_no_anonymous_admin() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    redis = services["redis"]["environment"]
    assert "--requirepass ${REDIS_PASSWORD:?" in redis["REDIS_ARGS"]
    for name in SERVICES:
        url = (services[name].get("environment") or {}).get("REDIS_URL", "")
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    example = (ROOT / ".env.example").read_text()
    assert "REDIS_PASSWORD=\n" in example
    assert "GRAFANA_ADMIN_PASSWORD=\n" in example
    assert ".env" in (ROOT / ".gitignore").read_text().split()
