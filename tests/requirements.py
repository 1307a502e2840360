"""What a test needs that a checkout may lack: skipped with a reason on a developer's machine,
a failure under CI (``CI`` set), where bootstrap installs everything and ``../shared`` lies
beside the clone, so a skip there would hide a test that no longer runs."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

IN_CI = bool(os.environ.get("CI"))


def require_module(name: str, reason: str) -> ModuleType:
    """The module; skip without it, except under CI (where the import error fails the run)."""
    if IN_CI:
        return importlib.import_module(name)
    module: ModuleType = pytest.importorskip(name, reason=reason)
    return module


def require_path(path: Path, reason: str) -> pytest.MarkDecorator:
    """A marker that skips the test when ``path`` is missing, except under CI."""
    return pytest.mark.skipif(not IN_CI and not path.exists(), reason=reason)
