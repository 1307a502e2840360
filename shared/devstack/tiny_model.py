"""Build a tiny random-weight chat model on disk, offline, for tests and the no-GPU demo.

A LlamaForCausalLM with a few small layers, a byte-level BPE tokenizer trained here on a little
text (English and Chinese), and a ChatML chat template. Its answers are gibberish; it exists so
that the real vLLM engine code path (chat template, sampling, stop strings, logprobs, continuous
batching) runs in CI without downloading weights.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
    "{% if not (loop.last and continue_final_message) %}{{ '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_CORPUS = [
    "Customers may return goods within 30 days. Answer: A B C D",
    "The rules say drivers must wear seat belts. Question: what is the answer?",
    "辅助信息：机动车驾驶人应当遵守道路交通安全法律。问题：答案：A B C D",
    "公民的合法的私有财产不受侵犯。选项 A. 是 B. 否 C. 不确定 D. 以上都不是",
    "Of course, I can assist you with that. However, I cannot help with harmful requests.",
] * 20

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_model(path: Path, *, vocab_size: int = 512, seed: int = 0) -> Path:
    """Write the model to ``path`` (idempotent) and return it."""
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS, vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 64: the CPU attention kernels need it
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    (path / "generation_config.json").write_text(
        json.dumps({"eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id})
    )
    return path
