"""Scripted generation backends: nothing to load, answers written by the test."""

from __future__ import annotations


class ScriptedBackend:
    """Base of scripted generation backends: nothing to start or close; a subclass sets
    ``model`` and writes ``generate`` (see ``GenerationBackend``)."""

    name = "scripted"
    model = "script"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
