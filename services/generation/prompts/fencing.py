"""Untrusted text in prompts: rule texts, questions, prefills and prompt sets come from outside.

Two defences:
- ``Neutralizer`` removes chat-template control markers (``<|im_start|>``, ``[INST]``,
  ``[SYSTEM_PROMPT]``, ...) from any untrusted text. Tokenizers turn these strings into real
  special tokens, so a rule holding ``<|im_start|>system`` would otherwise open a genuine system
  turn after the template is rendered. Removal runs to a fixpoint: one pass over
  ``<|im_<|im_end|>start|>`` would leave a freshly joined ``<|im_start|>``. The markers are the
  known template families plus every added or special token of the deployed model's tokenizer
  (``control_tokens``), so a model with its own markers (``<tool_call>``, ``<extra_id_0>``) is
  covered too.
- ``fence`` quotes retrieved rules between ``<rules>`` markers, one ``<rule>`` element each, after
  a line that says they are reference material rather than instructions; marker look-alikes
  inside a rule are escaped so a rule cannot close the fence early.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from shared.events import RetrievedRule

KNOWN_FAMILIES = (
    r"<\|[^|<>\n]{1,64}\|>",  # ChatML, Llama 3, Phi, Qwen, Command-R: <|im_start|>, <|eot_id|>
    r"\[/?INST\]|<</?SYS>>",  # Llama 2 / Mistral v1-v2
    # Mistral v3+ (tekken) control tokens
    r"\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CONTENT|TOOL_CALLS|THINK)\]",
    r"\[(?:IMG|IMG_BREAK|IMG_END|PREFIX|MIDDLE|SUFFIX|ARGS|CALL_ID)\]",
    r"</?s>|<(?:bos|eos|pad|unk|mask)>",  # BOS/EOS of SentencePiece and Gemma vocabularies
    r"<(?:start|end)_of_turn>",  # Gemma
    r"<\uff5c[^\uff5c\n]{1,64}\uff5c>",  # DeepSeek's full-width bars
)
"""Regular expressions of the control markers of the common chat-template families."""

MAX_PASSES = 8
"""Removal passes before a text counts as hostile nesting; each pass costs one scan, and text
that still forms markers after this many is broken up instead (``_break_up``)."""
_BREAK = str.maketrans({"<": "\uff1c", ">": "\uff1e", "[": "\uff3b", "]": "\uff3d"})


class Neutralizer:
    """Removes control markers from untrusted text: the known families and ``extra`` literal
    tokens (the deployed model's own). Case-insensitive."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        literals = sorted({t for t in extra if _is_marker(t)}, key=len, reverse=True)
        parts = [*KNOWN_FAMILIES, *(re.escape(t) for t in literals)]
        self.tokens = tuple(literals)
        self._pattern = re.compile("|".join(parts), re.IGNORECASE)

    def __call__(self, text: str) -> str:
        """The text without any marker, also none that removing others would join."""
        for _ in range(MAX_PASSES):
            cleaned = self._pattern.sub("", text)
            if cleaned == text:
                return text
            text = cleaned
        return self._break_up(text)

    def _break_up(self, text: str) -> str:
        """Deliberately nested markers: turn the brackets every marker needs into their
        full-width look-alikes, and what still matches (a model token without brackets) into a
        space, which joins nothing: one linear pass, whatever the depth."""
        return self._pattern.sub(" ", text.translate(_BREAK))

    def __repr__(self) -> str:
        return f"Neutralizer({len(self.tokens)} model tokens)"


def _is_marker(token: str) -> bool:
    """Whether a tokenizer's added token is structural: words added to a vocabulary
    (``hello``, ``北京``) are ordinary text and must stay."""
    return bool(token.strip()) and not token.replace("_", "").replace(" ", "").isalnum()


def control_tokens(tokenizer: Any) -> tuple[str, ...]:
    """A Hugging Face tokenizer's special and added tokens: the strings that tokenize to
    control ids of this model."""
    found: set[str] = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for added in decoder.values():
        content = getattr(added, "content", added)
        if isinstance(content, str):
            found.add(content)
    return tuple(sorted(found))


DEFAULT = Neutralizer()
"""The known families only (a backend without a local tokenizer, e.g. an OpenAI endpoint)."""


def neutralize(text: str) -> str:
    """The text without chat-template control markers of the known families."""
    return DEFAULT(text)


_FENCE_TAG = re.compile(r"<(/?)(rules?)\b", re.IGNORECASE)


def fence(rules: Sequence[RetrievedRule], neutralizer: Neutralizer = DEFAULT) -> str:
    """Rules as quoted elements: ``<rules>`` then one ``<rule id=.. version=..>`` per rule."""
    lines = ["<rules>"]
    for rule in rules:
        text = _FENCE_TAG.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", neutralizer(rule.text))
        lines.append(f'<rule id="{rule.rule_id}" version="{rule.version}">{text}</rule>')
    lines.append("</rules>")
    return "\n".join(lines)
