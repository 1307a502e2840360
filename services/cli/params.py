"""Parsing command-line values people type, with errors that say the expected form."""

from __future__ import annotations

from datetime import date
from typing import Any

import typer
from pydantic import TypeAdapter, ValidationError

from shared.events import ChangeSetName, Identifier, TenantId

_TENANT: TypeAdapter[str] = TypeAdapter(TenantId)
_RULE_ID: TypeAdapter[str] = TypeAdapter(Identifier)
_SET_NAME: TypeAdapter[str] = TypeAdapter(ChangeSetName)


def _checked(adapter: TypeAdapter[str], value: str, expected: str, option: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise typer.BadParameter(f"{value[:80]!r} is not {expected}", param_hint=option) from None


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
    return _checked(_TENANT, value, "a tenant id: letters, digits, '_' and '-', e.g. acme", option)


def _checked_tenant(value: str | None) -> str | None:
    return None if value is None else tenant_id(value)


def tenant_option(help: str, *, required: bool = True) -> Any:
    """A ``--tenant`` option whose value is checked as it is read (before anything loads)."""
    return typer.Option(... if required else None, "--tenant", help=help,
                        callback=_checked_tenant)  # fmt: skip


def set_name(value: str, option: str = "NAME") -> str:
    """A change set's name as the services accept it."""
    expected = "a change set name: lower-case letters, digits, '.', '_', '-'"
    return _checked(_SET_NAME, value, expected, option)


def rule_id(value: str) -> str:
    expected = "a rule id: letters, digits, '_', '.', ':' and '-'"
    return _checked(_RULE_ID, value, expected, "RULE_ID")
