"""C2-SYN's pure parts: where a harmful response is cut, what the model is prefilled with,
how the responses of one request are ranked, and the preference pairs the ranking gives.

For a harmful request with a harmful response, the responses of one request, best first:
the model's own answer (no prefill), then course-corrections after 1..k evenly spaced cuts of
the harmful response (earlier is better: less harm was written before the correction), then
the harmful response itself. Every ordered pair of that ranking is a preference (C2-SYN:
k = 4, six responses, 15 pairs per request).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from itertools import combinations
from typing import Any

OPENERS = (
    "Of course, I can help you with that.",
    "Sure, I can assist with that.",
    "Certainly, here is what you asked for.",
    "Absolutely, I can help with that.",
    "Yes, I can help you with that.",
    "Happy to help with that.",
)
"""Compliance openers the harmful prefix starts with."""
TRIGGERS = (
    "However, I must stop here, because",
    "But I cannot continue with this, since",
    "However, I should point out that",
    "But I have to warn you that",
    "However, I can't help with this any further, as",
    "But on reflection, I must decline, because",
)
"""Phrases that start the correction the model then continues."""
BREAKS = frozenset(',.!:;?-"(){}[]')


def harmful_response(row: dict[str, Any], min_words: int) -> str | None:
    """The first unsafe response of a PKU-SafeRLHF row longer than ``min_words`` words."""
    for i in (0, 1):
        text = row.get(f"response_{i}")
        unsafe = row.get(f"is_response_{i}_safe") is False and isinstance(text, str)
        if unsafe and len(str(text).split()) > min_words:
            return str(text)
    return None


def cut_prefixes(response: str, k: int, rng: random.Random) -> list[str]:
    """Up to ``k`` prefixes of ``response``, each ending at a punctuation mark, evenly spaced
    by punctuation count (C2-SYN's division), shortest first and all distinct."""
    marks = [i for i, ch in enumerate(response) if ch in BREAKS]
    if not marks:
        return []
    step = max(1, rng.randint(max(1, len(marks) // k - 1), max(1, len(marks) // k)))
    prefixes: list[str] = []
    for i in range(1, k + 1):
        index = i * step - 1
        if index >= len(marks):
            break
        prefix = response[: marks[index] + 1].strip()
        if prefix and prefix not in prefixes:
            prefixes.append(prefix)
    return prefixes


@dataclass(frozen=True, slots=True)
class Correction:
    position: int
    """1-based: the n-th cut (earlier cuts are preferred)."""
    prefill: str
    """Opener, the harmful prefix, the trigger: what the model continues from."""


def corrections(prompt: str, response: str, k: int, seed: int) -> list[Correction]:
    """The prefills of one request, deterministic per request and seed."""
    digest = hashlib.sha256(f"{seed}\0{prompt}\0{response}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return [
        Correction(n, f"{rng.choice(OPENERS)} {prefix} {rng.choice(TRIGGERS)}")
        for n, prefix in enumerate(cut_prefixes(response, k, rng), 1)
    ]


def joined(prefill: str, continuation: str) -> str:
    """The full assistant turn: the prefill and the model's continuation."""
    if not continuation or continuation[0].isspace() or continuation[0] in ",.;:!?":
        return prefill + continuation
    return f"{prefill} {continuation}"


@dataclass(frozen=True, slots=True)
class Ranked:
    """One response in a request's ranking, best first."""

    text: str
    label: str
    """``own`` (no prefill), ``corrected@n``, or ``harmful``."""


def rank(own: str | None, corrected: dict[int, str], harmful: str) -> list[Ranked]:
    """Best first: the model's own (verified harmless) answer, then verified corrections by
    position (earlier first), then the harmful response."""
    ranked = [Ranked(own, "own")] if own else []
    ranked += [Ranked(corrected[n], f"corrected@{n}") for n in sorted(corrected)]
    ranked.append(Ranked(harmful, "harmful"))
    return ranked


def pairs(prompt: str, ranked: list[Ranked]) -> list[dict[str, str]]:
    """Every ordered pair of the ranking as a DPO row (the ``prompt``/``chosen``/``rejected``
    columns TRL's DPO trainer reads, nothing else), identical texts skipped."""
    rows = []
    for better, worse in combinations(ranked, 2):
        if better.text.strip() != worse.text.strip():
            rows.append({"prompt": prompt, "chosen": better.text, "rejected": worse.text})
    return rows


def pair_digest(row: dict[str, str]) -> str:
    key = json.dumps([row["prompt"], row["chosen"], row["rejected"]], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:32]
