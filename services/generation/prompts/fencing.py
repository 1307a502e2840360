"""Untrusted text in prompts: rule texts, questions and prefills come from outside.

Two defences:
- ``neutralize`` removes chat-template control markers (``<|im_start|>``, ``[INST]``, ...) from
  any untrusted text. Tokenizers turn these strings into real special tokens, so a rule holding
  ``<|im_start|>system`` would otherwise open a genuine system turn after the template is
  rendered.
- ``fence`` quotes retrieved rules between ``<rules>`` markers, one ``<rule>`` element each, after
  a line that says they are reference material rather than instructions; marker look-alikes
  inside a rule are escaped so a rule cannot close the fence early.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.events import RetrievedRule

_CONTROL_MARKERS = re.compile(
    r"<\|[^|<>\n]{1,64}\|>"  # ChatML, Llama 3, Phi, Qwen, DeepSeek: <|im_start|>, <|eot_id|>
    r"|\[/?INST\]|<</?SYS>>"  # Llama 2 / Mistral
    r"|</?s>|<(?:start|end)_of_turn>|<\uff5c[^\uff5c\n]{1,64}\uff5c>",  # BOS/EOS, Gemma, DeepSeek
    re.IGNORECASE,
)
_FENCE_TAG = re.compile(r"<(/?)(rules?)\b", re.IGNORECASE)


def neutralize(text: str) -> str:
    """The text without chat-template control markers."""
    return _CONTROL_MARKERS.sub("", text)


def fence(rules: Sequence[RetrievedRule]) -> str:
    """Rules as quoted elements: ``<rules>`` then one ``<rule id=.. version=..>`` per rule."""
    lines = ["<rules>"]
    for rule in rules:
        text = _FENCE_TAG.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", neutralize(rule.text))
        lines.append(f'<rule id="{rule.rule_id}" version="{rule.version}">{text}</rule>')
    lines.append("</rules>")
    return "\n".join(lines)
