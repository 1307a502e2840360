"""The gateway through the real stack: the official ``openai`` client (sync, async, streaming)
and ``httpx`` for the error cases, against ingest, retrieval (real embedder), generation
(scripted backend) and one or more gateways on the real broker and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from services.gateway.app import GatewayService
from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from shared.tenants import ApiKeys
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS, RULES_LIVE
from tests.integration.gateway_stack import EchoBackend, OpenGateway

RULE = {"text": "Refunds are granted within 30 days of purchase with a receipt.",
        "title": "Refund policy", "domain": "policy"}  # fmt: skip
QUESTION = "Can I get a refund after 20 days if I kept my receipt?"


@pytest.fixture
async def generation(
    service_settings: dict[str, Any], prefix: str
) -> AsyncIterator[GenerationService]:
    settings = GenerationSettings(**service_settings, group_id=f"{prefix}.generation",
                                  request_timeout_s=5.0, stream_interval_s=0.02)  # fmt: skip
    async with GenerationService(settings, backend=EchoBackend()) as service:
        yield service


@pytest.fixture
async def gateway(open_gateway: OpenGateway, pipeline: None) -> AsyncIterator[GatewayService]:
    async with open_gateway() as service:
        yield service


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def put_rule(url: str, admin: str, rule_id: str, **fields: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=auth(admin), timeout=30) as http:
        response = await http.put(f"/rules/{rule_id}", params={"wait": "true"},
                                  json={**RULE, **fields})  # fmt: skip
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_openai_client_sync_async_and_streaming_cite_the_rule_versions(
    gateway: GatewayService, keys: ApiKeys
) -> None:
    admin, _ = await keys.create("acme", admin=True)
    user, _ = await keys.create("acme")
    change = await put_rule(gateway.base_url, admin, "refunds")
    assert (change["version"], change["outcome"]) == (1, "applied")
    await put_rule(gateway.base_url, admin, "refunds", text=RULE["text"] + " Sale items excluded.")

    # Sync client (in a thread: the services run on this loop).
    def ask_sync() -> Any:
        client = openai.OpenAI(base_url=gateway.base_url, api_key=user, max_retries=0)
        models = [m.id for m in client.models.list()]
        completion = client.chat.completions.create(
            model="alignstream", messages=[{"role": "user", "content": QUESTION}],
            temperature=0, max_tokens=64,
        )  # fmt: skip
        return models, completion

    models, completion = await asyncio.to_thread(ask_sync)
    assert {"alignstream", "alignstream:base", "alignstream:opo", "alignstream:drpo"} <= set(models)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content.startswith("echo:")
    assert completion.choices[0].finish_reason == "stop"
    extension = completion.model_extra["alignstream"]
    assert extension["grounded_in"] == [{"rule_id": "refunds", "version": 2}]
    assert extension["strategy"] == "opo"
    assert extension["searched_scope"]["source"] in {"global", "default", "question"}
    assert extension["timings"]["gateway_ms"] > 0
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 7

    # Async client, multi-turn, the baseline model: no rules.
    client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=user, max_retries=0)
    base = await client.chat.completions.create(
        model="alignstream:base",
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello"},
                  {"role": "assistant", "content": "Hi."},
                  {"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
    )  # fmt: skip
    assert base.model_extra is not None
    assert base.model_extra["alignstream"]["grounded_in"] == []
    assert base.model_extra["alignstream"]["strategy"] == "base"

    # Streaming: pieces in order, the last choice chunk carries the cited versions, usage last.
    stream = await client.chat.completions.create(
        model="alignstream", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert finals[0].choices[0].finish_reason == "stop"
    assert finals[0].model_extra is not None
    assert finals[0].model_extra["alignstream"]["grounded_in"] == [
        {"rule_id": "refunds", "version": 2}
    ]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 7
    assert gateway.chat.open.total == 0
    assert len(gateway.waiters) == 0
    await client.close()


async def test_keys_tenants_and_limits_answer_with_openai_errors(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    async with open_gateway() as gateway:
        user, record = await keys.create("acme")
        limited, _ = await keys.create("acme", rate_limit_per_s=1)
        body = {"model": "alignstream", "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:

            async def post(key: str | None, payload: Any = body, **kw: Any) -> httpx.Response:
                headers = auth(key) if key else {}
                return await http.post("/chat/completions", json=payload, headers=headers, **kw)

            for bad in (None, "ask_000000000000_" + "x" * 43, "sk-not-ours", "a" * 5000):
                response = await post(bad)
                assert response.status_code == 401, bad
                assert response.json()["error"]["code"] == "invalid_api_key"
                assert response.headers["www-authenticate"] == "Bearer"
            assert (await post(user)).status_code == 200
            await keys.revoke(record.key_id)
            assert (await post(user)).status_code == 401

            user, _ = await keys.create("acme")
            cases: list[tuple[dict[str, Any], int, str | None]] = [
                ({**body, "model": "gpt-4o"}, 404, "model_not_found"),
                ({**body, "n": 2}, 400, "unsupported_parameter"),
                ({**body, "logprobs": True}, 400, "unsupported_parameter"),
                ({**body, "tools": [{"type": "function"}]}, 400, "unsupported_parameter"),
                # The tenant is the key's, never the body's.
                ({**body, "tenant": "globex"}, 400, None),
                ({**body, "alignstream": {"tenant": "globex"}}, 400, None),
                ({**body, "messages": []}, 400, None),
                ({**body, "messages": [{"role": "tool", "content": "x"}]}, 400,
                 "unsupported_parameter"),
                ({**body, "temperature": 9}, 400, None),
                ({**body, "stop": ["a", "b", "c", "d", "e"]}, 400, None),
            ]  # fmt: skip
            for payload, status, code in cases:
                response = await post(user, payload)
                assert response.status_code == status, (payload, response.text)
                error = response.json()["error"]
                assert error["message"]
                assert error["type"]
                if code is not None:
                    assert error["code"] == code
            headers = {**auth(user), "content-type": "application/json"}
            response = await http.post("/chat/completions", content=b"{not json", headers=headers)
            assert response.status_code == 400
            huge = {**body, "messages": [{"role": "user", "content": "x" * 2_000_000}]}
            response = await post(user, huge)
            assert response.status_code == 413
            assert response.json()["error"]["code"] == "request_too_large"

            statuses = [(await post(limited)).status_code for _ in range(4)]
            assert statuses[0] == 200
            assert 429 in statuses
            response = await post(limited)
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["type"] == "rate_limit_error"

            failed = await post(user, {**body, "messages": [{"role": "user", "content": "fail"}]})
            assert failed.status_code == 502
            assert failed.json()["error"]["code"] == "backend"


async def test_in_flight_bound_timeout_and_a_client_that_leaves(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    user, _ = await keys.create("acme")
    slow = {"model": "alignstream:base", "messages": [{"role": "user", "content": "slow 1.5"}]}
    async with (
        open_gateway(max_in_flight=1, request_timeout_s=3.0) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, headers=auth(user), timeout=30) as http,
    ):
        first = asyncio.create_task(http.post("/chat/completions", json=slow))
        while gateway.chat.open.total == 0:  # noqa: ASYNC110 (polls another object's state)
            await asyncio.sleep(0.01)
        refused = await http.post("/chat/completions", json=slow)
        assert refused.status_code == 429
        assert "retry-after" in refused.headers
        assert (await first).status_code == 200

        # The client leaves mid-stream: its slot is released, nothing downstream breaks.
        words = [{"role": "user", "content": " ".join(["word"] * 30)}]
        streaming = {**slow, "stream": True, "messages": words}
        async with http.stream("POST", "/chat/completions", json=streaming) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break
        for _ in range(200):
            if gateway.chat.open.total == 0:
                break
            await asyncio.sleep(0.02)
        assert gateway.chat.open.total == 0
        assert (await http.post("/chat/completions", json=slow)).status_code == 200

    async with (
        open_gateway(request_timeout_s=0.5) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, headers=auth(user), timeout=30) as http,
    ):
        late = await http.post("/chat/completions", json=slow)
        assert late.status_code == 504
        assert late.json()["error"]["type"] == "timeout_error"
        late = await http.post("/chat/completions", json={**slow, "stream": True})
        assert late.status_code == 504  # nothing streamed yet: still a plain HTTP error


async def test_three_instances_share_the_broker_without_seeing_each_others_replies(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    user, _ = await keys.create("acme")
    async with open_gateway() as one, open_gateway() as two, open_gateway() as three:
        gateways = (one, two, three)
        assert len({g.reply_topic for g in gateways}) == 3  # unique instance ids by default
        clients = [openai.AsyncOpenAI(base_url=g.base_url, api_key=user, max_retries=0)
                   for g in gateways]  # fmt: skip
        answers = await asyncio.gather(*(
            clients[i % 3].chat.completions.create(
                model="alignstream:base", messages=[{"role": "user", "content": f"question {i}"}])
            for i in range(12)
        ))  # fmt: skip
        for i, answer in enumerate(answers):  # each its own answer, whichever instance
            assert f" question {i} " in (answer.choices[0].message.content or "")
        assert [g.waiters.unmatched for g in gateways] == [0, 0, 0]
        for client in clients:
            await client.close()


async def test_health_and_docs_on_the_api_port_without_a_key_or_the_internet(
    gateway: GatewayService,
) -> None:
    root = gateway.base_url.removesuffix("/v1")
    async with httpx.AsyncClient(base_url=root, timeout=30) as http:
        for path in ("/health", "/health/readiness"):
            answer = await http.get(path)
            assert (answer.status_code, answer.json()) == (200, {"status": "ok"}), path
        page = (await http.get("/docs")).text
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
        assert any(a.endswith("swagger-ui-bundle.js") for a in assets), page
        for asset in assets:  # every script, style and icon from this server: no CDN
            assert asset.startswith("/"), asset
            served = await http.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000, asset
        assert "/openapi.json" in page


async def test_rules_api_is_admin_only_tenant_scoped_and_the_check_endpoint_scores(
    gateway: GatewayService, keys: ApiKeys, reader: TopicReader
) -> None:
    admin, _ = await keys.create("acme", admin=True)
    user, _ = await keys.create("acme")
    other_admin, _ = await keys.create("globex", admin=True)
    await put_rule(gateway.base_url, admin, "refunds")
    await put_rule(
        gateway.base_url,
        admin,
        "dress-code",
        text="Staff wear name badges at work.",
        title="Dress code",
    )
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        assert (await http.get("/rules", headers=auth(user))).status_code == 403
        assert (await http.put("/rules/x", json=RULE, headers=auth(user))).status_code == 403
        listed = (await http.get("/rules", headers=auth(admin))).json()
        assert sorted(r["rule_id"] for r in listed["data"]) == ["dress-code", "refunds"]
        assert listed["next_cursor"] is None
        shown = (await http.get("/rules/refunds", headers=auth(admin))).json()
        assert (shown["version"], shown["text"], shown["title"]) == (
            1,
            RULE["text"],
            "Refund policy",
        )
        # Another tenant sees none of it, and its writes land in its own memory.
        assert (await http.get("/rules", headers=auth(other_admin))).json()["data"] == []
        assert (await http.get("/rules/refunds", headers=auth(other_admin))).status_code == 404
        bad = await http.put("/rules/bad id!", json=RULE, headers=auth(admin))
        assert bad.status_code == 400
        bad = await http.put("/rules/x", json={**RULE, "tenant": "globex"}, headers=auth(admin))
        assert bad.status_code == 400

        check = await http.post("/rules/applicable", headers=auth(user),
                                json={"text": QUESTION, "top_k": 2})  # fmt: skip
        assert check.status_code == 200, check.text
        found = check.json()
        assert found["data"][0]["rule_id"] == "refunds"
        assert found["data"][0]["version"] == 1
        assert found["data"][0]["score"] > 0
        assert found["searched_scope"]["searched"] == ["global"]
        none = await http.post("/rules/applicable", headers=auth(other_admin),
                               json={"text": QUESTION})  # fmt: skip
        assert none.json()["data"] == []

        deleted = await http.delete("/rules/refunds", params={"wait": "true"},
                                    headers=auth(admin))  # fmt: skip
        assert deleted.status_code == 200, deleted.text
        assert (deleted.json()["op"], deleted.json()["version"]) == ("delete", 2)
        assert deleted.json()["outcome"] == "applied"
        assert (await http.get("/rules/refunds", headers=auth(admin))).status_code == 404
        again = await http.delete("/rules/refunds", headers=auth(admin))
        assert again.status_code == 404
        # What is left is unrelated: below the default threshold, listed only when asked.
        check = await http.post("/rules/applicable", headers=auth(user), json={"text": QUESTION})
        assert check.json()["data"] == []
        check = await http.post("/rules/applicable", headers=auth(user),
                                json={"text": QUESTION, "min_score": -1})  # fmt: skip
        assert [r["rule_id"] for r in check.json()["data"]] == ["dress-code"]
        recreated = await put_rule(gateway.base_url, admin, "refunds")
        assert recreated["version"] == 3  # above the delete: not hidden by it
    # Every edit is in the log and, for ingest's fast lane, on rules.live.
    for spec in (RULES_EVENTS, RULES_LIVE):
        keys_seen = sorted(r.key for r in await reader.read(spec, count=4))
        assert keys_seen == [b"acme:dress-code"] + [b"acme:refunds"] * 3


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_no_generated_input_makes_the_served_openapi_schema_answer_5xx(
    gateway: GatewayService, keys: ApiKeys
) -> None:
    """schemathesis against /openapi.json, with an admin key (so every route is reached past
    its authentication): whatever it generates, the gateway answers below 500, and what it
    answers conforms to the schema."""
    import hypothesis
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Ok

    admin, _ = await keys.create("acme", admin=True)
    await put_rule(gateway.base_url, admin, "refunds")
    root = gateway.base_url.removesuffix("/v1")
    examples = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "25"))  # per operation

    def fuzz() -> list[str]:
        schema = schemathesis.openapi.from_url(f"{root}/openapi.json")
        schema.config.update(base_url=root)
        seen: list[str] = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the served schema is valid
            operation = result.ok()

            @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                                 suppress_health_check=list(hypothesis.HealthCheck),
                                 phases=[hypothesis.Phase.generate])  # fmt: skip
            @hypothesis.given(case=operation.as_strategy())
            def call(case: schemathesis.Case[Any]) -> None:
                response = case.call(base_url=root, headers=auth(admin), timeout=30)
                seen.append(f"{case.operation.label} {response.status_code}")
                case.validate_response(response, checks=[not_a_server_error])

            call()
        return seen

    seen = await asyncio.to_thread(fuzz)
    operations = {line.rsplit(" ", 1)[0] for line in seen}
    assert len(operations) >= 7, operations  # every route was exercised
    assert any(line.endswith(" 200") for line in seen)


def readme_examples() -> tuple[str, str]:
    """The README's "any OpenAI client" Python and curl examples."""
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from any OpenAI client", 1)[1].split("\n## ", 1)[0]
    (python,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (curl,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return python, curl


async def test_the_readme_examples_answer_through_the_gateway(
    gateway: GatewayService, keys: ApiKeys
) -> None:
    user, _ = await keys.create("acme")
    python, curl = readme_examples()
    assert len(python.strip().splitlines()) == 3

    def local(code: str) -> str:
        return code.replace("http://127.0.0.1:8000/v1", gateway.base_url).replace("ask_...", user)

    def run_python() -> str:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(local(python), {})
        return printed.getvalue()

    assert (await asyncio.to_thread(run_python)).startswith("echo:")
    shell = await asyncio.create_subprocess_exec(
        "bash", "-c", local(curl), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await shell.communicate()
    assert shell.returncode == 0
    answer = json.loads(out)
    assert answer["choices"][0]["message"]["content"].startswith("echo:")
    assert answer["alignstream"]["searched_scope"]["source"] == "request"


async def test_shutdown_answers_the_requests_it_holds_open_then_refuses_connections(
    open_gateway: OpenGateway, pipeline: None, keys: ApiKeys
) -> None:
    user, _ = await keys.create("acme")
    slow = {"model": "alignstream:base", "messages": [{"role": "user", "content": "slow 1.5"}]}
    opened = open_gateway()
    gateway = await opened.__aenter__()
    url = gateway.base_url
    async with httpx.AsyncClient(base_url=url, headers=auth(user), timeout=30) as http:
        open_request = asyncio.create_task(http.post("/chat/completions", json=slow))
        while gateway.chat.open.total == 0:  # noqa: ASYNC110 (polls another object's state)
            await asyncio.sleep(0.01)
        stopping = asyncio.create_task(opened.__aexit__(None, None, None))
        answered = await open_request
        assert answered.status_code == 200
        assert "echo:" in answered.json()["choices"][0]["message"]["content"]
        await stopping
    async with httpx.AsyncClient(base_url=url, headers=auth(user), timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/chat/completions", json=slow)
