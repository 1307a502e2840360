"""``alignstream serve SERVICE``: run one service until SIGTERM."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import typer

from services.registry import build_service
from shared.logging import configure_logging
from shared.settings import ObservabilitySettings


class ServiceName(StrEnum):
    INGEST = "ingest"
    RETRIEVAL = "retrieval"
    GENERATION = "generation"
    GRADING = "grading"


def serve(service: ServiceName = typer.Argument(..., help="Which service to run.")) -> None:
    """Run one service (settings from the environment) until SIGTERM or Ctrl-C."""
    observability = ObservabilitySettings()
    configure_logging(
        service.value, level=observability.log_level, json_lines=observability.log_json
    )
    asyncio.run(build_service(service.value).run())
