"""The OpenAI-compatible backend against a real OpenAI-compatible server: vLLM's API server,
on CPU, serving the tiny local model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.generation.backends.base import GenerationInput
from services.generation.backends.openai_compat import OpenAIBackend
from services.generation.settings import OpenAISettings
from shared import events
from shared.devstack.servers import free_port
from shared.devstack.tiny_model import build_tiny_model
from tests.requirements import require_module

require_module("vllm", "the CPU engine is installed by scripts/bootstrap.sh")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    model = str(build_tiny_model(tmp_path_factory.mktemp("openai-model") / "tiny-chat"))
    port = free_port()
    log = (tmp_path_factory.mktemp("logs") / "vllm-server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
         "--dtype", "float32", "--enforce-eager", "--gpu-memory-utilization", "0.3",
         "--max-model-len", "1024", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(Path(log.name).read_text(errors="replace")[-3000:])
            time.sleep(1)
        yield f"{url}/v1", model
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def request(**params: object) -> GenerationInput:
    return GenerationInput(
        request_id="r",
        messages=({"role": "user", "content": "Question: refunds?\nAnswer:"},),
        params=events.GenerationParams.model_validate({"max_tokens": 8, "seed": 1, **params}),
    )


async def test_generate_stream_usage_and_logprobs(server: tuple[str, str]) -> None:
    url, model = server
    backend = OpenAIBackend(OpenAISettings(base_url=url, model=model))
    try:
        plain = await backend.generate(request())
        assert plain.completion_tokens == 8
        assert plain.finish_reason == "length"
        assert plain.prompt_tokens > 5
        assert plain.ttft_ms is not None
        assert plain.text
        again = await backend.generate(request())
        assert again.text == plain.text  # temperature 0: deterministic

        scored = await backend.generate(request(max_tokens=1, option_letters=("A", "B", "C")))
        assert scored.option_logprobs is not None
        assert set(scored.option_logprobs) <= {"A", "B", "C"}

        # OPO's scoring on an OpenAI-compatible server: logit_bias on the letters' token ids.
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        ids = {letter: tokenizer.encode(letter, add_special_tokens=False)[0] for letter in "AB"}
        biased = OpenAIBackend(OpenAISettings(base_url=url, model=model, option_token_ids=ids))
        try:
            constrained = await biased.generate(
                request(max_tokens=1, option_letters=("A", "B"), constrain_to_options=True)
            )
        finally:
            await biased.close()
        assert constrained.text.strip() in {"A", "B"}, constrained.text

        prefill = GenerationInput(
            request_id="p",
            messages=(*request().messages, {"role": "assistant", "content": "Of course,"}),
            params=events.GenerationParams(max_tokens=3),
            continue_final=True,
        )
        assert (await backend.generate(prefill)).completion_tokens == 3
    finally:
        await backend.close()
