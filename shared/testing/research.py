"""Scripted judge and optimizer servers for DRPO's search, behind the real OpenAI chat API.

The reward is the test's: ``AspectJudgeServer`` picks two aspects for every query and scores
an answer ``1 + <occurrences of a marker word>`` on each (at most 5); ``RewriteServer`` answers
the optimizer's prompt with rewrites that append one phrase per action (e.g. one adds the marker
and the others do not), so the search's own logic decides what is found. Both record what they
were asked; ``RewriteServer`` can be told to fail (a crash mid-search).
"""

from __future__ import annotations

import json

from shared.testing.openai_server import ChatCompletionServer


def section(text: str, start: str, end: str) -> str:
    """The text between two markers of a rendered judge prompt."""
    return text.split(start, 1)[1].split(end, 1)[0]


class AspectJudgeServer(ChatCompletionServer):
    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.scored: list[str] = []
        """Every scoring prompt received (a repeat would be judged work done twice)."""

    async def answer(self, messages: list[dict[str, str]]) -> str:
        prompt = messages[0]["content"]
        if "[Why these aspects]" in prompt:
            self.scored.append(prompt)
            answer = section(prompt, "[Answer]\n", "\n\n[Aspects]")
            score = min(5, 1 + answer.lower().count(self.marker))
            return json.dumps({"Helpfulness": {"rationale": "scripted", "score": score},
                               "Safety": {"rationale": "scripted", "score": score}})  # fmt: skip
        if "decide which qualities matter most" in prompt:
            return '```json\n{"reasoning": "scripted", "aspects": ["Helpfulness", "Safety"]}\n```'
        return "unknown"


class RewriteServer(ChatCompletionServer):
    def __init__(self, phrases: dict[int, str]) -> None:
        super().__init__()
        self.phrases = phrases
        self.fail_after: int | None = None
        """Fail every rewrite request after this many (None: never)."""
        self.rewrites = 0
        self.failed = 0
        """Requests answered with an error (counted in ``requests`` too)."""

    async def answer(self, messages: list[dict[str, str]]) -> str:
        prompt = messages[0]["content"]
        if self.fail_after is not None and self.rewrites >= self.fail_after:
            self.failed += 1
            raise RuntimeError("optimizer down")
        self.rewrites += 1
        current = section(prompt, "[Current system prompt]\n", "\n\n[Earlier versions")
        action = int(section(prompt, "this is rewrite ", " of"))
        new = f"{current} {self.phrases[action]}".strip()
        return json.dumps({"analysis": "scripted", "thought": "scripted",
                           "new_system_prompt": new})  # fmt: skip
