"""A service's /metrics shows its own families and the shared ones, never another service's,
even when one process has imported every service (the CLI, the demo, tests)."""

from __future__ import annotations

from prometheus_client import generate_latest

from services.generation.app import GenerationService
from services.grading.app import GradingService
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared.metrics import service_registry
from shared.service import Service

FAMILY_OF: dict[type[Service], str] = {
    IngestService: "alignstream_rules_indexed",
    RetrievalService: "alignstream_retrieval_seconds",
    GenerationService: "alignstream_generation_in_flight",
    GradingService: "alignstream_exam_jobs_active",
}


def test_each_service_exports_only_its_own_families() -> None:
    for service, own in FAMILY_OF.items():
        text = generate_latest(service_registry(service.metrics)).decode()
        assert f"# HELP {own}" in text
        assert "# HELP alignstream_messages_consumed_total" in text  # shared, labelled by service
        assert "# HELP process_" in text or "# HELP python_" in text
        others = [name for other, name in FAMILY_OF.items() if other is not service]
        assert not [name for name in others if f"# HELP {name}" in text], service.name
