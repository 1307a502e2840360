"""Scripted generation backends: nothing to load, answers written by the test."""

from __future__ import annotations

import asyncio

from services.generation.backends.base import GenerationInput, GenerationOutput


class ScriptedBackend:
    """Base of scripted generation backends: nothing to start or close; a subclass sets
    ``model`` and writes ``generate`` (see ``GenerationBackend``)."""

    name = "scripted"
    model = "script"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


class FollowsItsSystemPrompt(ScriptedBackend):
    """A model whose system prompt decides its answer: it says ``marker`` once for each time
    its system prompt does (DRPO's search then has a reward to climb). Counts its answers."""

    model = "follows-its-system-prompt"

    def __init__(self, marker: str = "careful") -> None:
        self.marker = marker
        self.answered = 0

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        self.answered += 1
        system = next((m["content"] for m in request.messages if m["role"] == "system"), "")
        text = "Here you go." + f" I am {self.marker}." * system.lower().count(self.marker)
        return GenerationOutput(text=text, finish_reason="stop", completion_tokens=5)


class ObeysItsConstitution(ScriptedBackend):
    """Harmful unless a constitution reaches it: retrieved rules (OPO's "Supplementary
    information") or principles in a system turn (IterAlign's pending principles)."""

    model = "obeys-its-constitution"

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        grounded = any(
            "Supplementary information" in m["content"]
            or "principles of your constitution" in m["content"]
            for m in request.messages
        )
        text = (
            "Sorry, I can't help with that; it would harm someone."
            if grounded
            else "Sure, here is how to do it step by step."
        )
        return GenerationOutput(text=text, finish_reason="stop", completion_tokens=10)


class SlowStreamer(ScriptedBackend):
    """Streams its answer a word at a time, ``interval_s`` apart (``words`` words), and counts
    what became of each request: started, cancelled (aborted mid-answer) or finished."""

    model = "slow-streamer"

    def __init__(self, words: int = 40, interval_s: float = 0.25) -> None:
        self.words, self.interval_s = words, interval_s
        self.started = self.cancelled = self.finished = 0
        self.running = 0

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        self.started += 1
        self.running += 1
        try:
            for i in range(self.words):
                if request.on_text is not None:
                    request.on_text(f"w{i} ")
                await asyncio.sleep(self.interval_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        self.finished += 1
        text = "".join(f"w{i} " for i in range(self.words))
        return GenerationOutput(text=text, finish_reason="stop", completion_tokens=self.words)
