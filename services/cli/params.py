"""Parsing command-line values people type, with errors that say the expected form."""

from __future__ import annotations

from datetime import date

import typer
from pydantic import TypeAdapter, ValidationError

from shared.events import Identifier, TenantId

_TENANT: TypeAdapter[str] = TypeAdapter(TenantId)
_RULE_ID: TypeAdapter[str] = TypeAdapter(Identifier)


def iso_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date: write YYYY-MM-DD, e.g. 2024-06-01", param_hint=option
        ) from None


def tenant_id(value: str, option: str = "--tenant") -> str:
    """A tenant id as the services accept it (checked before anything is read or published)."""
    try:
        return _TENANT.validate_python(value)
    except ValidationError:
        raise typer.BadParameter(
            f"{value[:80]!r} is not a tenant id: letters, digits, '_' and '-', e.g. acme",
            param_hint=option,
        ) from None


def rule_id(value: str) -> str:
    try:
        return _RULE_ID.validate_python(value)
    except ValidationError:
        raise typer.BadParameter(
            f"{value[:80]!r} is not a rule id: letters, digits, '_', '.', ':' and '-'",
            param_hint="RULE_ID",
        ) from None
