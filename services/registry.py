"""Which class implements each service; imported lazily so a service loads only its own deps."""

from __future__ import annotations

import importlib

from shared.service import Service

SERVICES: dict[str, str] = {
    "ingest": "services.ingest.app:IngestService",
    "retrieval": "services.retrieval.app:RetrievalService",
    "generation": "services.generation.app:GenerationService",
    "grading": "services.grading.app:GradingService",
    "gateway": "services.gateway.app:GatewayService",
}


def service_class(name: str) -> type[Service]:
    module_name, _, class_name = SERVICES[name].partition(":")
    cls: type[Service] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_service(name: str) -> Service:
    """Construct a service from environment settings."""
    return service_class(name).from_env()
