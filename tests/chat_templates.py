"""Tokenizers of four chat-template families, built offline for the prompt-injection tests.

Each has its family's control tokens as real atomic tokens and a chat template written here in
the family's format (ChatML; Llama 2 with ``[INST]``/``<<SYS>>`` as text; Llama 3 headers;
Mistral v3 with ``[SYSTEM_PROMPT]``/``[INST]`` as control tokens), plus a ChatML model with
added tokens of its own (``<tool_call>``, as Qwen and Hermes models have) that no known family
pattern covers. The vocabulary is a byte-level BPE trained on a few lines: the words do not
matter, the control tokens and the template do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.devstack.tiny_model import CHATML

_CORPUS = [
    "Customers may return goods within 30 days. Do not share emails. Question: answer",
    "辅助信息：机动车驾驶人应当遵守道路交通安全法律。问题：答案",
    "system user assistant rules rule id version reference information instructions",
] * 10

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set rest = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}"
    "{% if m['role'] == 'user' %}{{ '<s>[INST] ' }}"
    "{% if loop.first and system %}{{ '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}{% endif %}"
    "{{ m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] }}"
    "{% if not (loop.last and continue_final_message) %}{{ ' </s>' }}{% endif %}{% endif %}"
    "{% endfor %}"
)
LLAMA3 = (
    "{{ '<|begin_of_text|>' }}"
    "{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] }}"
    "{% if not (loop.last and continue_final_message) %}{{ '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
MISTRAL_V3 = (
    "{{ '<s>' }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ '[SYSTEM_PROMPT]' + m['content'] + '[/SYSTEM_PROMPT]' }}"
    "{% elif m['role'] == 'user' %}{{ '[INST]' + m['content'] + '[/INST]' }}"
    "{% else %}{{ m['content'] }}"
    "{% if not (loop.last and continue_final_message) %}{{ '</s>' }}{% endif %}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class Family:
    name: str
    template: str
    special: tuple[str, ...]
    """Control tokens of the vocabulary (atomic, special)."""
    added: tuple[str, ...] = ()
    """Tokens added to the vocabulary that are not special (still atomic)."""
    text_markers: tuple[str, ...] = ()
    """Markers that are plain text in this family (Llama 2's ``[INST]``)."""


FAMILIES = (
    Family("chatml", CHATML, ("<|endoftext|>", "<|im_start|>", "<|im_end|>")),
    Family("llama2", LLAMA2, ("<s>", "</s>", "<unk>"),
           text_markers=("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")),
    Family("llama3", LLAMA3, ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                              "<|eot_id|>")),
    Family("mistral_v3", MISTRAL_V3, ("<s>", "</s>", "<unk>", "[INST]", "[/INST]",
                                      "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CALLS]",
                                      "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]")),
    Family("chatml_tools", CHATML, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
           added=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")),
)  # fmt: skip


@cache
def tokenizer_for(family: Family) -> Any:
    """A Hugging Face fast tokenizer with the family's tokens and template."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS, vocab_size=400, special_tokens=list(family.special))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe)
    tokenizer.add_special_tokens({"additional_special_tokens": list(family.special)})
    if family.added:
        tokenizer.add_tokens(list(family.added))
    tokenizer.chat_template = family.template
    return tokenizer


def control_ids(family: Family, messages: list[dict[str, str]], *, prefill: bool = False) -> Any:
    """The control-token ids of the rendered prompt, in order, and the text markers' count: what
    decides the turns the model sees."""
    tokenizer = tokenizer_for(family)
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not prefill, continue_final_message=prefill
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    atomic = {tokenizer.convert_tokens_to_ids(t) for t in (*family.special, *family.added)}
    markers = {marker: text.count(marker) for marker in family.text_markers}
    return [i for i in ids if i in atomic], markers
