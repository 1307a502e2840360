"""A batch is grounded tenant by tenant, the tenant with the least text to embed first: one
tenant's long questions do not hold back another tenant's short one fetched with them."""

from __future__ import annotations

from services.retrieval.ordering import lightest_tenant_first
from shared import events
from shared.events.chat import MAX_QUERY_CHARS


def ask(tenant: str, text: str) -> events.ChatRequest:
    question = events.ChatMessage(role=events.Role.USER, content=text)
    return events.ChatRequest(tenant=tenant, messages=(question,))


def test_the_short_question_of_another_tenant_goes_first() -> None:
    batch = [ask("noisy", "x" * 90_000), ask("noisy", "y" * 90_000), ask("quiet", "returns?")]
    assert lightest_tenant_first(batch) == [[2], [0, 1]]


def test_weight_is_what_is_embedded_not_what_was_sent() -> None:
    """A 90k-character question embeds its first MAX_QUERY_CHARS only: two of them weigh
    2 * MAX_QUERY_CHARS, against three questions just under that length."""
    long = [ask("a", "x" * 90_000) for _ in range(2)]
    near = [ask("b", "z" * (MAX_QUERY_CHARS - 1)) for _ in range(3)]
    assert lightest_tenant_first([*near, *long]) == [[3, 4], [0, 1, 2]]


def test_every_request_once_in_batch_order_within_its_tenant() -> None:
    tenants = ["a", "b", "a", "c", "b", "a"]
    batch = [ask(tenant, "q") for tenant in tenants]
    groups = lightest_tenant_first(batch)
    assert sorted(i for group in groups for i in group) == list(range(len(batch)))
    for group in groups:
        assert group == sorted(group)
        assert len({tenants[i] for i in group}) == 1
    # equal weight per request: fewer requests first, ties by first appearance
    assert [tenants[g[0]] for g in groups] == ["c", "b", "a"]


def test_an_empty_batch_has_no_groups() -> None:
    assert lightest_tenant_first([]) == []
