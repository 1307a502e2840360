"""Token counting for budgets, without a model's tokenizer.

A fast approximation of common LLM tokenizers: each CJK character ~1 token, other words ~1 token
per 4 characters, each punctuation mark 1 token. The generation service may count exactly with
its model's tokenizer; retrieval budgets only need to be close (OPO: 1000 tokens of rules).
"""

from __future__ import annotations

import re
from typing import Protocol

_PIECES = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"  # CJK, kana, hangul
    r"|[^\W_]+"  # a run of letters/digits of other scripts
    r"|\S",  # punctuation
    re.UNICODE,
)


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...


def _piece_tokens(piece: str) -> int:
    return 1 if len(piece) == 1 else (len(piece) + 3) // 4


class HeuristicTokenCounter:
    def count(self, text: str) -> int:
        return sum(_piece_tokens(match.group()) for match in _PIECES.finditer(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that counts at most ``max_tokens``."""
        used = 0
        for match in _PIECES.finditer(text):
            used += _piece_tokens(match.group())
            if used > max_tokens:
                return text[: match.start()].rstrip()
        return text
