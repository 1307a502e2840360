"""OpenAI requests -> ChatRequest and ChatResponse -> completions and chunks (pure), and the
waiter that orders a streamed answer's pieces."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from services.gateway.errors import ApiError, from_pipeline
from services.gateway.protocol import ChatCompletionRequest
from services.gateway.replies import Waiter
from services.gateway.translate import Chunks, Defaults, to_chat_request, to_completion
from shared import events
from shared.tenants import ApiKey

KEY = ApiKey(key_id="0123456789ab", tenant="acme", admin=False, label="", default_scope=("US/CA",),
             rate_limit_per_s=None, created_at=0.0, revoked_at=None)  # fmt: skip
DEFAULTS = Defaults(events.Strategy.OPO, max_tokens=512)


UNSCOPED = dataclasses.replace(KEY, default_scope=())


def request(key: ApiKey = KEY, **body: Any) -> events.ChatRequest:
    payload = {"model": "alignstream", "messages": [{"role": "user", "content": "hi"}], **body}
    parsed = ChatCompletionRequest.model_validate(payload)
    return to_chat_request(parsed, key, reply_topic="replies.gw-1", defaults=DEFAULTS)


def test_a_request_speaks_for_the_keys_tenant_with_openai_defaults() -> None:
    chat = request(messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "Can I return it?", "name": "sam"},
    ], stop="END", seed=7)  # fmt: skip
    assert chat.tenant == "acme"
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "user"]
    assert chat.messages[1].content == "a\nb"
    assert chat.query == "Can I return it?"
    assert chat.strategy is events.Strategy.OPO
    assert chat.scope.jurisdictions == ("US/CA",)  # the key's default scope
    assert (chat.params.temperature, chat.params.top_p) == (1.0, 1.0)  # OpenAI's defaults
    assert (chat.params.max_tokens, chat.params.stop, chat.params.seed) == (512, ("END",), 7)
    assert chat.reply_topic == "replies.gw-1"
    assert chat.metadata == {"api_key": "0123456789ab"}


def test_extension_options_and_model_names_pick_scope_and_strategy() -> None:
    chat = request(UNSCOPED, model="alignstream:base", max_completion_tokens=9, max_tokens=100,
                   alignstream={"jurisdictions": ["CN/山东"], "as_of": "2024-06-01", "top_k": 3,
                                "metadata": {"case": "17"}})  # fmt: skip
    assert chat.strategy is events.Strategy.BASE
    assert chat.scope.jurisdictions == ("CN/山东",)
    assert str(chat.scope.as_of) == "2024-06-01"
    assert chat.scope.top_k == 3
    assert chat.params.max_tokens == 9
    assert chat.metadata["case"] == "17"
    assert request(alignstream={"strategy": "drpo"}).strategy is events.Strategy.DRPO


def test_a_scoped_key_without_admin_right_is_bound_to_its_scope() -> None:
    assert request(alignstream={"jurisdictions": ["us/ca"]}).scope.jurisdictions == ("us/ca",)
    for options in ({"jurisdictions": ["CN/山东"]}, {"jurisdictions": ["US/CA", "US/NY"]},
                    {"any_jurisdiction": True}):  # fmt: skip
        with pytest.raises(ApiError) as refused:
            request(alignstream=options)
        assert refused.value.status == 403
    # The same scope is only a default for an admin key, and no bound for a key without one.
    admin = dataclasses.replace(KEY, admin=True)
    wide = request(admin, alignstream={"jurisdictions": ["CN/山东"], "any_jurisdiction": True})
    assert wide.scope.jurisdictions == ("CN/山东",)
    assert wide.scope.any_jurisdiction
    assert request(UNSCOPED, alignstream={"any_jurisdiction": True}).scope.any_jurisdiction


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "gpt-4o"}, 404, "model"),
        ({"model": "alignstream:oracle"}, 404, "model"),
        ({"alignstream": {"strategy": "oracle"}}, 400, "alignstream.strategy"),
        ({"model": "alignstream:candidate"}, 404, "model"),
        ({"alignstream": {"strategy": "candidate"}}, 400, "alignstream.strategy"),
        ({"n": 3}, 400, "n"),
        ({"logprobs": True}, 400, "logprobs"),
        ({"presence_penalty": 0.5}, 400, "presence_penalty"),
        ({"response_format": {"type": "json_object"}}, 400, "response_format"),
        (
            {"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]},
            400,
            "messages[0].role",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            400,
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": None}]}, 400, "messages[0].content"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"alignstream": {"locales": ["a\x00"]}}, 400, None),
    ],
)
def test_what_the_pipeline_cannot_honour_is_an_openai_error(
    body: dict[str, Any], status: int, param: str | None
) -> None:
    with pytest.raises((ApiError, ValueError)) as caught:
        request(**body)
    if isinstance(caught.value, ApiError):
        assert caught.value.status == status
        if param is not None:
            assert caught.value.detail.param == param


def response(**fields: Any) -> events.ChatResponse:
    base: dict[str, Any] = {"request_id": "r1", "tenant": "acme", "text": "Yes, within 30 days.",
                            "grounded_in": (events.RuleRef(rule_id="refunds", version=3),),
                            "finish_reason": "length", "model": "smol",
                            "usage": events.Usage(prompt_tokens=5,
                                                  completion_tokens=4)}  # fmt: skip
    return events.ChatResponse(**{**base, **fields})


def test_a_completion_carries_the_cited_rule_versions_and_usage() -> None:
    completion = to_completion(response(), model="alignstream", created=1, gateway_ms=3.5)
    assert completion.id == "chatcmpl-r1"
    assert completion.choices[0].message.content == "Yes, within 30 days."
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.total_tokens == 9
    assert [r.model_dump() for r in completion.alignstream.grounded_in] == [
        {"rule_id": "refunds", "version": 3}
    ]
    assert completion.alignstream.timings.gateway_ms == 3.5


def test_stream_chunks_open_with_the_role_and_close_with_rules_then_usage() -> None:
    chunks = Chunks("r1", "alignstream", 1)
    assert chunks.opening().choices[0].delta.role == "assistant"
    last, usage = chunks.closing(response(), gateway_ms=1.0, include_usage=True)
    assert last.choices[0].finish_reason == "length"
    assert last.alignstream is not None
    assert last.alignstream.grounded_in[0].version == 3
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.total_tokens == 9
    assert len(chunks.closing(response(), gateway_ms=1.0, include_usage=False)) == 1


def test_pipeline_errors_map_to_http_statuses() -> None:
    assert from_pipeline(events.ErrorKind.TIMEOUT, "late").status == 504
    assert from_pipeline(events.ErrorKind.INVALID_REQUEST, "big").status == 400
    assert from_pipeline(events.ErrorKind.BACKEND, "down").status == 502
    assert from_pipeline(events.ErrorKind.OVERLOADED, "busy").status == 503


async def test_a_waiter_yields_pieces_in_order_once_then_the_response() -> None:
    waiter = Waiter()
    token = {"request_id": "r1", "tenant": "acme"}
    out: list[object] = []

    async def read() -> None:
        async for item in waiter.stream():
            out.append(item)

    reading = asyncio.create_task(read())
    waiter.offer(events.ChatToken(**token, seq=1, text="b"))  # ahead of its turn
    await asyncio.sleep(0)
    assert out == []
    waiter.offer(events.ChatToken(**token, seq=0, text="a"))
    waiter.offer(events.ChatToken(**token, seq=0, text="a"))  # a redelivered piece
    await asyncio.sleep(0)
    assert out == ["a", "b"]
    final = response(text="ab")
    waiter.offer(final)
    waiter.offer(response(text="again"))  # a redelivered response changes nothing
    await asyncio.wait_for(reading, 1)
    assert out == ["a", "b", final]
    assert await waiter.response() is final
