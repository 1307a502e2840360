"""The Helm chart and docker-compose.yml, checked without a cluster or Docker.

The chart is rendered by the real Helm engine (the Go SDK via helm-python-sdk) with each values
file in deploy/helm/values/; every manifest is validated against the Kubernetes schemas
(kubernetes-validate, strict), the KEDA and Prometheus Operator objects against their own
required fields; compose is validated against the compose specification.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from shared.settings import KafkaSettings
from shared.topics import CHAT_GROUNDED, CHAT_REQUESTS, EXAM_ANSWERS, TOPICS
from tests.requirements import require_module
from tests.unit.chart import (
    CHART,
    ROOT,
    VALUE_SETS,
    VALUES,
    container,
    helm,
    of_kind,
    pod_specs,
    render,
    set_id,
)

kubernetes_validate = require_module("kubernetes_validate", "dev extra")
compose_spec = require_module("compose_spec", "dev extra")

K8S_VERSION = "1.30.0"
CRDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
# The authentication parameters of KEDA's Kafka scaler (keda.sh/docs/latest/scalers/apache-kafka).
KEDA_KAFKA_AUTH = {"sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}


@pytest.mark.parametrize("files", VALUE_SETS, ids=set_id)
def test_every_manifest_is_valid_kubernetes(files: list[str]) -> None:
    docs = render(None, *files)
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Job"} <= {
        d["kind"] for d in docs
    }
    for doc in docs:
        if doc["kind"] in CRDS:
            check_crd(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def check_crd(doc: dict[str, Any]) -> None:
    """The fields KEDA and the Prometheus Operator require (their CRDs are not in the bundled
    Kubernetes schemas)."""
    spec = doc["spec"]
    if doc["kind"] == "ScaledObject":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert spec["scaleTargetRef"]["name"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] in ("kafka", "prometheus")
            assert all(isinstance(v, str) for v in trigger["metadata"].values())
        assert spec["fallback"]["failureThreshold"] >= 1
        assert spec["fallback"]["replicas"] >= spec["minReplicaCount"]
        assert set(spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]) <= {
            "scaleUp", "scaleDown"}  # fmt: skip
    elif doc["kind"] == "TriggerAuthentication":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        for ref in spec["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
            assert ref["parameter"] in KEDA_KAFKA_AUTH, ref
    else:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"]
        assert all(e["port"] == "http-metrics" for e in spec["endpoints"])


def test_lint_is_clean() -> None:
    assert helm.lint(str(CHART))["errors"] == []


def test_gpu_goes_to_generation_only() -> None:
    deployments = of_kind(render(None, "gpu.yaml", "gpu-operator.yaml"), "Deployment")
    names = ("ingest", "retrieval", "grading", "generation", "gateway")
    assert set(deployments) == {f"rel-alignstream-{n}" for n in names}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        limits = container(deployment)["resources"].get("limits", {})
        if name.endswith("generation"):
            assert limits["nvidia.com/gpu"] == "1"
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
                "tolerations"
            ]
            mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
            assert mounts == {"/dev/shm", "/models", "/tmp", "/cache"}
            claims = [
                v["persistentVolumeClaim"]["claimName"]
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            ]
            assert claims == ["model-weights-rox"]
            assert container(deployment)["startupProbe"]["failureThreshold"] * 10 >= 600
        else:
            assert "nvidia.com/gpu" not in limits
            assert "runtimeClassName" not in pod
            assert "tolerations" not in pod
            assert "nodeSelector" not in pod
    # An existing claim: the chart creates none.
    assert of_kind(render(None, "gpu.yaml"), "PersistentVolumeClaim") == {}


def generation_pod(values: dict[str, Any] | None, *files: str) -> dict[str, Any]:
    deployment = of_kind(render(values, *files), "Deployment")["rel-alignstream-generation"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_gpu_scheduling_is_the_cluster_files_alone() -> None:
    """The defaults schedule nowhere in particular; each cluster's file gives the whole
    selector (not merged with a default that its nodes lack)."""
    default = generation_pod(None)
    assert "nodeSelector" not in default
    assert "runtimeClassName" not in default
    gke = generation_pod(None, "gpu.yaml", "gke.yaml")
    assert gke["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert "runtimeClassName" not in gke  # GKE's nodes have no nvidia RuntimeClass
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present",
            "effect": "NoSchedule"} in gke["tolerations"]  # fmt: skip
    operator = generation_pod(None, "gpu.yaml", "gpu-operator.yaml")
    assert operator["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert operator["runtimeClassName"] == "nvidia"


def test_cpu_profile_runs_the_cpu_engine_without_gpus() -> None:
    generation = of_kind(render(None, "cpu.yaml"), "Deployment")["rel-alignstream-generation"]
    env = {e["name"]: e.get("value") for e in container(generation)["env"]}
    assert env["ALIGNSTREAM_VLLM_DTYPE"] == "float32"
    assert "nvidia.com/gpu" not in json.dumps(generation)
    assert "runtimeClassName" not in generation["spec"]["template"]["spec"]
    # The image with the CPU engine, not the CUDA one (which would not start without a GPU).
    default_image = container(of_kind(render(), "Deployment")["rel-alignstream-generation"])
    assert container(generation)["image"].split(":")[0].endswith("alignstream-generation-cpu")
    assert container(generation)["image"] != default_image["image"]
    assert "ENGINE=cpu" in (VALUES / "cpu.yaml").read_text()  # how that image is built


def test_external_kafka_and_redis_use_secrets_and_deploy_nothing_stateful() -> None:
    docs = render(None, "external.yaml")
    assert of_kind(docs, "StatefulSet") == {}
    settings = of_kind(docs, "ConfigMap")["rel-alignstream-settings"]["data"]
    assert settings["KAFKA_BOOTSTRAP"] == "b-1.kafka.example.com:9096,b-2.kafka.example.com:9096"
    assert settings["ALIGNSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for deployment in of_kind(docs, "Deployment").values():
        env = {e["name"]: e for e in container(deployment)["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "alignstream-redis",
            "key": "redis-url",
        }
        assert (
            env["ALIGNSTREAM_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
            == "alignstream-kafka"
        )
        for key in ("ALIGNSTREAM_OPENAI_API_KEY", "ALIGNSTREAM_EMBEDDER_API_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "alignstream-openai",
                                                             "key": "api-key"}  # fmt: skip
        assert env["ALIGNSTREAM_KAFKA_RULE_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "alignstream-rule-signing",
            "key": "signing-key",
        }
        assert env["ALIGNSTREAM_KAFKA_SSL_CAFILE"]["value"] == "/etc/alignstream/kafka-tls/ca.crt"
        pod = deployment["spec"]["template"]["spec"]
        assert {"name": "kafka-tls", "secret": {"secretName": "alignstream-kafka-tls",
                "defaultMode": 0o440}} in pod["volumes"]  # fmt: skip
    (job,) = of_kind(docs, "Job").values()
    job_env = {e["name"]: e for e in container(job)["env"]}
    assert job_env["ALIGNSTREAM_KAFKA_SSL_CAFILE"]["value"] == "/etc/alignstream/kafka-tls/ca.crt"
    assert of_kind(docs, "Secret") == {}  # no credential is ever written by the chart
    assert "password" not in json.dumps(settings).lower()


def test_defaults_bundle_kafka_and_redis_for_trials() -> None:
    docs = render()
    assert set(of_kind(docs, "StatefulSet")) == {"rel-alignstream-kafka", "rel-alignstream-redis"}
    settings = of_kind(docs, "ConfigMap")["rel-alignstream-settings"]["data"]
    # Fully qualified: KEDA's operator in its own namespace resolves it too.
    fqdn = "rel-alignstream-kafka.prod.svc.cluster.local:9092"
    assert settings["KAFKA_BOOTSTRAP"] == fqdn
    broker = container(of_kind(docs, "StatefulSet")["rel-alignstream-kafka"])
    advertised = {e["name"]: e["value"] for e in broker["env"]}["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == f"PLAINTEXT://{fqdn}"
    assert of_kind(docs, "ScaledObject") == {}
    assert of_kind(docs, "ServiceMonitor") == {}


def test_autoscaling_objects_only_when_enabled_and_capped_at_partitions() -> None:
    docs = render(None, "autoscaling.yaml")
    scaled = of_kind(docs, "ScaledObject")
    assert set(scaled) == {
        f"rel-alignstream-{n}" for n in ("ingest", "retrieval", "grading", "generation")
    }
    retrieval = scaled["rel-alignstream-retrieval"]["spec"]
    assert retrieval["maxReplicaCount"] == 12  # asked for 12 (chat.requests has 24 partitions)
    # No maxReplicas: the input topic's partitions (files/topics.yaml, from shared/topics.py).
    assert scaled["rel-alignstream-grading"]["spec"]["maxReplicaCount"] == EXAM_ANSWERS.partitions
    (kafka,) = retrieval["triggers"]
    assert kafka["metadata"]["topic"] == "chat.requests"
    assert kafka["metadata"]["consumerGroup"] == "alignstream-retrieval"
    generation = scaled["rel-alignstream-generation"]["spec"]
    assert [t["type"] for t in generation["triggers"]] == ["prometheus", "kafka"]
    assert "alignstream_generation_in_flight" in generation["triggers"][0]["metadata"]["query"]
    # Autoscaled deployments leave replicas to KEDA (the gateway's to its HPA).
    deployments = of_kind(docs, "Deployment")
    assert "replicas" not in deployments["rel-alignstream-retrieval"]["spec"]
    assert "replicas" not in deployments["rel-alignstream-gateway"]["spec"]
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-alignstream-gateway"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "alignstream_gateway_in_flight"
    assert metric["pods"]["target"]["averageValue"] == "128"
    (ingress,) = of_kind(docs, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "llm.example.com"
    assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"], "secretName": "llm-tls"}]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rel-alignstream-gateway", "port": {"name": "http-api"}}
    assert of_kind(docs, "ServiceMonitor")
    dashboard = of_kind(docs, "ConfigMap")["rel-alignstream-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["alignstream.json"])["uid"] == "alignstream"


def test_partitions_are_one_table_for_topics_services_and_scalers() -> None:
    """The chart's defaults are shared/topics.py's (files/topics.yaml, generated); a value set
    overrides one topic for the topics Job, the services and the autoscaler that reads it."""
    committed = yaml.safe_load((CHART / "files" / "topics.yaml").read_text())["partitions"]
    assert committed == {spec.name: spec.partitions for spec in TOPICS}
    grown = {"kafka": {"partitions": {"chat.grounded": 48, "exam.answers": 2}}}
    scaling = {"generation": {"autoscaling": {"enabled": True, "maxReplicas": 64},
                              "modelCache": {"existingClaim": "weights-rox"}},
               "grading": {"autoscaling": {"enabled": True}}}  # fmt: skip
    docs = render({**grown, "services": scaling})
    scaled = of_kind(docs, "ScaledObject")
    assert scaled["rel-alignstream-generation"]["spec"]["maxReplicaCount"] == 48
    assert scaled["rel-alignstream-grading"]["spec"]["maxReplicaCount"] == 2
    settings = of_kind(docs, "ConfigMap")["rel-alignstream-settings"]["data"]
    as_set = KafkaSettings(partitions=json.loads(settings["ALIGNSTREAM_KAFKA_PARTITIONS"]))
    assert as_set.partitions_of(CHAT_GROUNDED) == 48
    assert as_set.partitions_of(CHAT_REQUESTS) == CHAT_REQUESTS.partitions
    (job,) = of_kind(docs, "Job").values()
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert json.loads(env["ALIGNSTREAM_KAFKA_PARTITIONS"]) == grown["kafka"]["partitions"]
    with pytest.raises(helm.HelmError, match=r"no topic chat\.unknown"):
        render({"kafka": {"partitions": {"chat.unknown": 3}}})


def test_managed_kafka_gets_the_brokers_replication_and_gpus_split_the_model() -> None:
    bundled = of_kind(render(), "ConfigMap")["rel-alignstream-settings"]["data"]
    assert bundled["ALIGNSTREAM_KAFKA_REPLICATION_FACTOR"] == "1"  # the single bundled broker
    external = {"kafka": {"deploy": False, "bootstrap": "b-1:9092"},
                "redis": {"existingSecret": "r"}}  # fmt: skip
    docs = render(external)
    data = of_kind(docs, "ConfigMap")["rel-alignstream-settings"]["data"]
    assert "ALIGNSTREAM_KAFKA_REPLICATION_FACTOR" not in data  # the broker's default
    (job,) = of_kind(docs, "Job").values()
    assert "ALIGNSTREAM_KAFKA_REPLICATION_FACTOR" not in {e["name"] for e in container(job)["env"]}
    with pytest.raises(helm.HelmError, match="replicationFactor=1 with an external Kafka"):
        render({**external, "topicsJob": {"replicationFactor": 1}})
    chosen = of_kind(render(None, "external.yaml"), "ConfigMap")["rel-alignstream-settings"]
    assert chosen["data"]["ALIGNSTREAM_KAFKA_REPLICATION_FACTOR"] == "3"
    static = of_kind(render({"kafka": {"staticMembership": True}}), "Deployment")
    for name in ("ingest", "retrieval", "generation", "grading"):
        env = {e["name"]: e for e in container(static[f"rel-alignstream-{name}"])["env"]}
        assert env["ALIGNSTREAM_KAFKA_GROUP_INSTANCE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.name"}}  # fmt: skip
    plain = container(of_kind(render(), "Deployment")["rel-alignstream-ingest"])
    assert "ALIGNSTREAM_KAFKA_GROUP_INSTANCE" not in {e["name"] for e in plain["env"]}
    two = render({"services": {"generation": {"gpu": {"count": 2}}}})
    env = {e["name"]: e.get("value") for e in container(
        of_kind(two, "Deployment")["rel-alignstream-generation"])["env"]}  # fmt: skip
    assert env["ALIGNSTREAM_VLLM_TENSOR_PARALLEL_SIZE"] == "2"


def test_topic_prefix_and_group_overrides_reach_the_scalers() -> None:
    docs = render({"kafka": {"topicPrefix": "staging."}, "services": {"ingest": {
        "env": {"ALIGNSTREAM_INGEST_GROUP_ID": "ingest-v2"}}}}, "autoscaling.yaml")  # fmt: skip
    (trigger,) = of_kind(docs, "ScaledObject")["rel-alignstream-ingest"]["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == "staging.rules.events"
    assert trigger["metadata"]["consumerGroup"] == "ingest-v2"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bogus": 1}, "additional properties 'bogus' not allowed"),
        ({"kafka": {"deploy": False}}, "/kafka/bootstrap"),
        ({"redis": {"deploy": False}}, "/redis/existingSecret"),
        ({"services": {"generation": {"backend": "tgi"}}}, "/services/generation/backend"),
        ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
        ({"services": {"retrieval": {"replicas": -1}}}, "/services/retrieval/replicas"),
        ({"services": {"gateway": {"port": 0}}}, "/services/gateway/port"),
        (
            {"services": {"gateway": {"ingress": {"host": "Bad Host"}}}},
            "/services/gateway/ingress/host",
        ),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values)


def test_every_value_is_documented() -> None:
    """Each key in values.yaml has a comment on it or on its parent block."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.]*):", line)
        if not match or match.group(1):  # top-level keys must carry their own comment
            continue
        if not lines[i - 1].lstrip().startswith("#"):
            undocumented.append(match.group(2))
    assert undocumented == []


def test_scaler_inputs_match_the_topic_registry() -> None:
    from shared import topics

    consumed = {"ingest": topics.RULES_EVENTS, "retrieval": topics.CHAT_REQUESTS,
                "grading": topics.EXAM_ANSWERS, "generation": topics.CHAT_GROUNDED}  # fmt: skip
    unbounded = {"enabled": True, "maxReplicas": 1000}
    services: dict[str, Any] = {name: {"autoscaling": unbounded} for name in consumed}
    services["generation"]["modelCache"] = {"existingClaim": "weights-rox"}
    docs = render({"services": services})
    for name, spec in consumed.items():
        scaler = of_kind(docs, "ScaledObject")[f"rel-alignstream-{name}"]["spec"]
        kafka = next(t for t in scaler["triggers"] if t["type"] == "kafka")
        assert kafka["metadata"]["topic"] == spec.name, name
        assert scaler["maxReplicaCount"] == spec.partitions, name


def test_dashboard_queries_only_metrics_the_services_export() -> None:
    import prometheus_client

    import services.generation.app
    import services.grading.app
    import services.ingest.app
    import services.retrieval.app  # noqa: F401  (registers their metrics)

    exported = set()
    for metric in prometheus_client.REGISTRY.collect():
        # Labelled metrics have no samples until first used: derive the series names.
        exported |= {metric.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    dashboard = json.loads((CHART / "dashboards" / "alignstream.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"alignstream_\w+", target["expr"])}  # fmt: skip
    assert used
    assert used - exported == set()


def test_compose_file_follows_the_compose_spec() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    project = compose_spec.PyOptions(apply_merge=True).from_yaml(text)
    project.validate()
    raw = yaml.safe_load(text)
    services = raw["services"]
    assert {"kafka", "redis", "topics", "ingest", "retrieval", "grading", "generation",
            "generation-cpu", "gateway", "prometheus", "grafana",
            "jaeger"} <= set(services)  # fmt: skip
    for name in ("ingest", "retrieval", "grading", "generation", "gateway"):
        assert services[name]["command"] == ["serve", name]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), name
    gpu = services["generation"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert (gpu["driver"], gpu["capabilities"]) == ("nvidia", ["gpu"])
    assert services["generation"]["profiles"] == ["gpu"]
    # Replicas of the gateway (--scale) name themselves: a fixed name would share one reply
    # topic and consumer group, and each would lose the other's answers.
    assert "ALIGNSTREAM_GATEWAY_INSTANCE" not in services["gateway"]["environment"]
    assert services["generation-cpu"]["profiles"] == ["cpu"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t.split(":")[0] for job in scrape["scrape_configs"]
               for group in job["static_configs"] for t in group["targets"]}  # fmt: skip
    assert targets <= set(services)


def test_compose_spec_rejects_mistakes() -> None:
    with pytest.raises(ValueError, match="bogus"):
        compose_spec.PyOptions(apply_merge=True).from_yaml(
            "services:\n  a:\n    image: x\n    bogus: 1\n"
        )


def test_grading_reads_exams_only_from_its_read_only_folder_and_probes_reach_every_pod() -> None:
    docs = render()
    (settings,) = of_kind(docs, "ConfigMap").values()
    assert settings["data"]["ALIGNSTREAM_HTTP_HOST"] == "0.0.0.0"  # loopback is the default
    grading = container(of_kind(docs, "Deployment")["rel-alignstream-grading"])
    env = {e["name"]: e.get("value") for e in grading["env"]}
    assert env["ALIGNSTREAM_GRADING_DATA_ROOT"] == "/data/exams"
    mounts = {m["name"]: m for m in grading["volumeMounts"]}
    assert mounts["exams"] == {"name": "exams", "mountPath": "/data/exams", "readOnly": True}
    claimed = render({"services": {"grading": {"examsClaim": "exam-files"}}})
    pod = of_kind(claimed, "Deployment")["rel-alignstream-grading"]["spec"]["template"]["spec"]
    (exams,) = [v for v in pod["volumes"] if v["name"] == "exams"]
    assert exams["persistentVolumeClaim"] == {"claimName": "exam-files", "readOnly": True}
    for name, deployment in of_kind(docs, "Deployment").items():
        if not name.endswith("grading"):
            mounted = {m["name"] for m in container(deployment).get("volumeMounts", [])}
            assert "exams" not in mounted, name


def test_the_gateway_serves_its_api_drains_in_its_grace_period_and_searches_as_retrieval() -> None:
    docs = render({"services": {"retrieval": {"env": {
        "ALIGNSTREAM_RETRIEVAL_EMBEDDER_BACKEND": "openai", "ALIGNSTREAM_RETRIEVAL_BATCH_MAX": 32,
        "OTHER": "x"}}}})  # fmt: skip
    gateway = of_kind(docs, "Deployment")["rel-alignstream-gateway"]
    pod = gateway["spec"]["template"]["spec"]
    box = container(gateway)
    assert {"name": "http-api", "containerPort": 8000} in box["ports"]
    env = {e["name"]: e for e in box["env"]}
    assert env["ALIGNSTREAM_GATEWAY_HOST"]["value"] == "0.0.0.0"
    assert env["ALIGNSTREAM_GATEWAY_INSTANCE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    timeout = int(env["ALIGNSTREAM_GATEWAY_REQUEST_TIMEOUT_S"]["value"])
    drain = int(env["ALIGNSTREAM_GATEWAY_SHUTDOWN_TIMEOUT_S"]["value"])
    assert timeout < drain < pod["terminationGracePeriodSeconds"]
    # The check endpoint embeds with retrieval's embedder (its settings, not the rest).
    assert env["ALIGNSTREAM_RETRIEVAL_EMBEDDER_BACKEND"]["value"] == "openai"
    assert "OTHER" not in env
    service = of_kind(docs, "Service")["rel-alignstream-gateway"]
    assert {"name": "http-api", "port": 8000, "targetPort": "http-api"} in service["spec"]["ports"]
    assert of_kind(docs, "Ingress") == {}
    assert of_kind(docs, "HorizontalPodAutoscaler") == {}
    for name, deployment in of_kind(docs, "Deployment").items():
        if not name.endswith("gateway"):
            assert "http-api" not in json.dumps(deployment), name


@pytest.mark.parametrize("files", VALUE_SETS, ids=set_id)
def test_every_pod_runs_restricted_without_an_api_token(files: list[str]) -> None:
    docs = render(None, *files)
    (account,) = of_kind(docs, "ServiceAccount").values()
    assert account["automountServiceAccountToken"] is False
    for name, pod in pod_specs(docs).items():
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        if not name.startswith("StatefulSet/"):
            assert pod["serviceAccountName"] == account["metadata"]["name"], name


def test_generation_rollouts_never_wait_for_a_second_gpu_or_a_held_cache() -> None:
    def generation(values: dict[str, Any] | None, *files: str) -> dict[str, Any]:
        spec: dict[str, Any] = of_kind(render(values, *files), "Deployment")[
            "rel-alignstream-generation"
        ]["spec"]
        return spec

    # The chart's own ReadWriteOnce cache: the old pod must let go before the new one mounts it.
    default = generation(None)
    assert default["strategy"] == {"type": "Recreate"}
    assert default["progressDeadlineSeconds"] >= 90 * 10 + 300
    # A shared (ReadOnlyMany) claim: one pod at a time, never a surge pod asking for a GPU.
    shared = generation(None, "gpu.yaml")
    one_at_a_time = {"maxSurge": 0, "maxUnavailable": 1}
    assert shared["strategy"] == {"type": "RollingUpdate", "rollingUpdate": one_at_a_time}
    custom = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert generation({"services": {"generation": {"strategy": custom}}})["strategy"] == custom
    # Several pods on one ReadWriteOnce claim would hang in Multi-Attach: refused at render.
    for values in ({"replicas": 2}, {"autoscaling": {"enabled": True}}):
        with pytest.raises(helm.HelmError, match="ReadWriteOnce claim"):
            render({"services": {"generation": values}})
    assert "strategy" not in of_kind(render(), "Deployment")["rel-alignstream-retrieval"]["spec"]


def test_compose_keeps_the_rule_log_and_publishes_on_loopback_only() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    kafka = services["kafka"]
    (volume,) = kafka["volumes"]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == volume.split(":")[1]  # on the volume
    assert "HOST://localhost:29092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    published = [(name, port) for name, s in services.items() for port in s.get("ports", [])]
    assert published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), (name, port)


def test_the_image_build_context_leaves_out_the_venv_and_keeps_what_is_copied() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}  # fmt: skip
    assert {".venv", ".git", ".alignstream"} <= ignored
    for dockerfile in (ROOT / "deploy" / "docker").glob("Dockerfile*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert source not in ignored, (dockerfile.name, source)


def test_consumers_on_apache_kafka_poll_slowly_and_a_polling_broker_can_be_tuned() -> None:
    """Apache Kafka answers a fetch when data arrives: the chart and the compose file set long
    waits (the services' 10 ms, meant for a broker that polls, would have each idle consumer
    poll Apache Kafka ~100 times a second)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-service"]
    chart = of_kind(render(), "ConfigMap")["rel-alignstream-settings"]["data"]
    for env in (compose["environment"], chart):
        settings = KafkaSettings(
            fetch_max_wait_ms=int(env["ALIGNSTREAM_KAFKA_FETCH_MAX_WAIT_MS"]),
            chat_fetch_max_wait_ms=int(env["ALIGNSTREAM_KAFKA_CHAT_FETCH_MAX_WAIT_MS"]),
        )
        assert settings.fetch_wait_ms(chat_path=False) == 500
        assert settings.fetch_wait_ms(chat_path=True) == 500
    tansu = of_kind(render({"kafka": {"fetchWaitMs": 10}}), "ConfigMap")
    data = tansu["rel-alignstream-settings"]["data"]
    assert data["ALIGNSTREAM_KAFKA_FETCH_MAX_WAIT_MS"] == "10"
    assert data["ALIGNSTREAM_KAFKA_CHAT_FETCH_MAX_WAIT_MS"] == "10"


def test_the_shared_model_claim_is_filled_before_generation_starts() -> None:
    jobs = of_kind(render(None, "gpu.yaml"), "Job")
    fill = jobs["rel-alignstream-model-fill"]
    assert fill["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = fill["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in box["env"]}
    generation = container(of_kind(render(None, "gpu.yaml"), "Deployment")[
        "rel-alignstream-generation"])  # fmt: skip
    generation_env = {e["name"]: e.get("value") for e in generation["env"]}
    # The same cache layout and snapshot generation reads offline.
    assert env["HF_HOME"] == generation_env["HF_HOME"] == "/models"
    assert env["MODEL"] == generation_env["ALIGNSTREAM_VLLM_MODEL"]
    assert {"name": "models", "mountPath": "/models"} in box["volumeMounts"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == ["model-weights-rox"]
    assert "rel-alignstream-model-fill" not in of_kind(render(), "Job")  # off by default
    with pytest.raises(helm.HelmError, match=r"fill needs modelCache\.existingClaim"):
        render({"services": {"generation": {"modelCache": {"fill": {"enabled": True}}}}})


def test_every_documented_helm_install_waits_longer_than_the_chart_needs() -> None:
    """Helm's default 5 minutes is shorter than the topics Job's deadline and generation's
    start-up: every install the READMEs show sets a --timeout that covers both."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    needed_s = max(values["topicsJob"]["deadlineSeconds"],
                   values["services"]["generation"]["startupFailureThreshold"] * 10)  # fmt: skip
    installs = []
    for readme in (ROOT / "README.md", ROOT / "deploy" / "helm" / "README.md"):
        installs += [line for line in readme.read_text().splitlines()
                     if line.startswith("helm install")]  # fmt: skip
    assert len(installs) >= 4
    for line in installs:
        timeout = re.search(r"--timeout (\d+)m", line)
        assert timeout is not None, line
        assert int(timeout.group(1)) * 60 >= needed_s, line
