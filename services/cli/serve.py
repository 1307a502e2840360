"""``alignstream serve SERVICE``: run one service until SIGTERM."""

from __future__ import annotations

import asyncio

import typer

from services.registry import SERVICES, build_service
from shared.logging import configure_logging
from shared.settings import ObservabilitySettings

CHOICES = "|".join(SERVICES)


def _known(name: str) -> str:
    if name not in SERVICES:
        raise typer.BadParameter(f"{name!r} is not a service; choose from {CHOICES}")
    return name


SERVICE = typer.Argument(..., metavar="SERVICE", callback=_known, help=f"One of {CHOICES}.")


def serve(service: str = SERVICE) -> None:
    """Run one service (settings from the environment) until SIGTERM or Ctrl-C."""
    observability = ObservabilitySettings()
    configure_logging(service, level=observability.log_level, json_lines=observability.log_json)
    asyncio.run(build_service(service).run())
