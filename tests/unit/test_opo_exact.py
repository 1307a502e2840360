"""``--protocol opo-exact``: OPO's protocol put to the model the way OPO's code puts it to open
models (system and user joined by a newline, no chat template, repetition penalty 1.1, the
oracle's articles with the principle's own ``:``); ``opo`` keeps the chat template."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2 import Template

from services.generation.backends.base import GenerationInput
from services.generation.backends.vllm_engine import VllmEngineBackend
from services.generation.prompts import build_prompt
from services.generation.prompts.opo import JOINED_TEMPLATE, joined_text
from services.generation.settings import VllmSettings
from services.grading.asking import exam_request
from services.grading.datasets import ExamQuestion
from shared import events

NOW = datetime(2026, 1, 1, tzinfo=UTC)
QUESTION = ExamQuestion.model_validate({
    "question_id": "q1", "stem": "在示例省济南市，经营者应当？",
    "options": {"A": "三日", "B": "七日", "C": "十日", "D": "一月"}, "answer": "B",
    "principle": "示例省条例规定:<第一条:经营者应当七日内退货。>", "location": "山东济南",
})  # fmt: skip


def asked(protocol: events.PromptProtocol, strategy: events.Strategy) -> events.ChatRequest:
    job = events.ExamJob(tenant="opo", dataset="a_law.csv", scoring="logprobs", protocol=protocol)
    return exam_request(job, QUESTION, strategy, "t", nonce="n")


def test_grading_asks_with_opos_repetition_penalty_only_under_opo_exact() -> None:
    exact, opo = asked("opo-exact", events.Strategy.OPO), asked("opo", events.Strategy.OPO)
    assert exact.protocol == "opo-exact"
    assert exact.params.repetition_penalty == pytest.approx(1.1)
    assert opo.params.repetition_penalty == 1.0
    # everything else of OPO's protocol is the same
    for request in (exact, opo):
        assert request.params.constrain_to_options
        assert request.messages[0].role is events.Role.SYSTEM
        assert request.scope.jurisdictions == ("山东济南",)


@pytest.mark.parametrize("protocol", ["opo", "opo-exact"])
def test_the_prompt_is_joined_under_opo_exact_and_templated_under_opo(protocol: str) -> None:
    request = asked(protocol, events.Strategy.ORACLE)  # type: ignore[arg-type]
    grounded = events.GroundedRequest(request=request, rules=request.oracle_rules,
                                      received_at=NOW)  # fmt: skip
    prompt = build_prompt(grounded, count_tokens=len)
    assert prompt.joined is (protocol == "opo-exact")
    user = prompt.messages[-1]["content"]
    # the oracle's article: "：" in alignstream's rendering, the principle's own ":" when exact
    colon = ":" if protocol == "opo-exact" else "："
    assert f"示例省条例第一条{colon}经营者应当七日内退货。" in user


def test_the_engine_renders_a_joined_prompt_without_the_chat_template() -> None:
    backend = VllmEngineBackend(VllmSettings())  # not started: a joined prompt needs no tokenizer
    messages = ({"role": "system", "content": "SYS"}, {"role": "user", "content": "Q\nA. x"})
    params = events.GenerationParams(max_tokens=1)
    joined = GenerationInput(request_id="r", messages=messages, params=params, joined=True)
    assert backend.render(joined) == "SYS\nQ\nA. x"
    templated = GenerationInput(request_id="r", messages=messages, params=params)
    with pytest.raises(AttributeError):  # the chat template needs the started engine's tokenizer
        backend.render(templated)


def test_the_joined_template_a_server_renders_is_the_joined_text() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "你是一个中文人工智能助手。"},
        {"role": "user", "content": "辅助信息：…\n\n问题：？\nA. x\n答案："},
    ]
    assert Template(JOINED_TEMPLATE).render(messages=messages) == joined_text(messages)
    assert joined_text(messages) == f"{messages[0]['content']}\n{messages[1]['content']}"


class Refused(Exception):
    pass


async def test_an_openai_compatible_server_gets_the_joined_template_and_the_penalty() -> None:
    """A vLLM server renders the prompt itself: it is sent the joining template (exact there;
    other servers ignore the field) and the repetition penalty."""
    from services.generation.backends.base import BackendError
    from services.generation.backends.openai_compat import OpenAIBackend
    from services.generation.settings import OpenAISettings

    sent: list[dict[str, Any]] = []

    async def create(**body: Any) -> Any:
        sent.append(body)
        raise Refused

    backend = OpenAIBackend(OpenAISettings(base_url="http://127.0.0.1:9/v1", model="m"))
    backend._client.chat.completions.create = create  # type: ignore[method-assign]
    messages = ({"role": "system", "content": "SYS"}, {"role": "user", "content": "Q"})
    params = events.GenerationParams(max_tokens=1, repetition_penalty=1.1)
    for joined in (True, False):
        with pytest.raises((BackendError, Refused)):
            await backend.generate(GenerationInput(request_id="r", messages=messages,
                                                   params=params, joined=joined))  # fmt: skip
    exact, plain = (body["extra_body"] for body in sent)
    assert exact == {"chat_template": JOINED_TEMPLATE, "add_generation_prompt": False,
                     "repetition_penalty": 1.1}  # fmt: skip
    assert plain == {"repetition_penalty": 1.1}
    await backend.close()
