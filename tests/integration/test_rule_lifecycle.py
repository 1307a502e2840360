"""A rule's life on the real stack: every version in its history (publisher, signature, event
time), rollback to an old version's content, activate and deactivate as new versions, filtered
lists a page at a time, and a history that survives ``memory rebuild --drop``; over the CLI and
over REST for admin keys."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from services.ingest.app import IngestService
from services.ingest.rebuild import rebuild
from services.ingest.settings import IngestSettings
from shared import events
from shared.client import AlignstreamClient
from shared.dlq import Record
from shared.embedders.use import UniversalSentenceEncoder
from shared.memory.history import HistoryEntry, RuleHistory, history_entries
from shared.memory.keys import RuleKeys
from shared.memory.lifecycle import RuleChangeRefused, RuleLifecycle
from shared.memory.query import RuleFilter
from shared.memory.reader import RuleReader
from shared.signing import RecordSigner
from shared.tenants import ApiKeys
from tests.integration.gateway_stack import OpenGateway
from tests.integration.helpers import alignstream_cli
from tests.samples import sample_rule

TEXTS = ("Refunds within 14 days.", "Refunds within 30 days.", "No refunds on sale items.")


def lifecycle(client: aioredis.Redis, prefix: str) -> RuleLifecycle:
    return RuleLifecycle(RuleReader(client, RuleKeys(prefix)), RuleHistory(client, prefix))


async def publish(settings: IngestSettings, *changes: events.RuleEvent) -> None:
    async with AlignstreamClient(settings.kafka) as client:
        confirmed = await client.publish_rules(list(changes), wait=True, timeout_s=30)
    assert len(confirmed) == len(changes)


def versions(rule_id: str = "refunds", *, tags: tuple[str, ...] = ()) -> list[events.RuleUpsert]:
    return [
        events.RuleUpsert(
            rule=sample_rule(rule_id=rule_id, version=v, text=text, tags=tags), publisher=f"ops-{v}"
        )
        for v, text in enumerate(TEXTS, start=1)
    ]


async def test_history_rollback_and_status_changes_are_new_versions(
    ingest: IngestService,
    ingest_settings: IngestSettings,
    redis_client: aioredis.Redis,
    use_embedder: UniversalSentenceEncoder,
    prefix: str,
) -> None:
    await publish(ingest_settings, *versions())
    rules = lifecycle(redis_client, prefix)
    history = await rules.history.versions("acme", "refunds")
    assert [e.version for e in history] == [3, 2, 1]
    assert [e.publisher for e in history] == ["ops-3", "ops-2", "ops-1"]
    assert {e.signature for e in history} == {"not_checked"}  # no signing key in this test
    assert all(e.source.startswith(f"{prefix}.rules.") for e in history)
    assert history[2].rule is not None
    assert history[2].rule.text == TEXTS[0]

    back = await rules.rollback("acme", "refunds", 1, publisher="ops-rollback")
    assert (back.rule.version, back.rule.text) == (4, TEXTS[0])
    await publish(ingest_settings, back)
    stored = await rules.reader.get("acme", "refunds")
    assert stored is not None
    assert (stored.version, stored.text) == (4, TEXTS[0])

    off = await rules.with_status("acme", "refunds", events.RuleStatus.INACTIVE, publisher="ops")
    assert off is not None
    await publish(ingest_settings, off)
    assert await rules.with_status("acme", "refunds", events.RuleStatus.INACTIVE,
                                   publisher="ops") is None  # fmt: skip
    served, _ = await rules.reader.select(RuleFilter(tenant="acme"))  # active only
    assert served == []
    kept, total = await rules.reader.select(RuleFilter(tenant="acme", statuses=()))
    assert ([r.status for r in kept], total) == (["inactive"], 1)

    # A delete is in the history too; rolling back to it is refused, rolling back past it
    # restores the rule.
    await publish(ingest_settings, events.RuleDelete(tenant="acme", rule_id="refunds", version=6))
    for missing, status in ((6, 409), (99, 404)):
        with pytest.raises(RuleChangeRefused) as refused:
            await rules.rollback("acme", "refunds", missing, publisher=None)
        assert refused.value.status == status
    await publish(ingest_settings, await rules.rollback("acme", "refunds", 2, publisher=None))
    assert (await rules.current("acme", "refunds")).text == TEXTS[1]  # type: ignore[union-attr]

    # memory rebuild --drop drops the documents; the history stays whole.
    await rebuild(ingest_settings.kafka, ingest_settings.redis, use_embedder, drop=True)
    after = await rules.history.versions("acme", "refunds")
    assert [e.version for e in after] == [7, 6, 5, 4, 3, 2, 1]
    assert [e.op for e in after][1] == "delete"
    assert (await rules.current("acme", "refunds")).version == 7  # type: ignore[union-attr]


async def test_a_history_keeps_its_newest_versions_and_never_a_version_twice(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    history = RuleHistory(redis_client, prefix, max_versions=3)
    entry = (await _entries())[0]
    added = await history.record([entry.model_copy(update={"version": v}) for v in range(1, 6)])
    assert added == [True] * 5
    assert [e.version for e in await history.versions("acme", "refunds")] == [5, 4, 3]
    assert await history.record([entry.model_copy(update={"version": 4, "publisher": "x"})]) == [
        False]  # fmt: skip
    assert (await history.at("acme", "refunds", 4)).publisher == "ops-1"  # type: ignore[union-attr]
    assert [e.version for e in await history.versions("acme", "refunds", limit=1, before=5)] == [4]
    assert await history.newest_version("acme", "refunds") == 5
    assert await history.newest_version("acme", "nothing") == 0


async def _entries() -> list[HistoryEntry]:
    record = Record(topic="p.rules.events", partition=0, offset=7, key=b"acme:refunds",
                    value=b"{}", headers={})  # fmt: skip
    entry = HistoryEntry.of(record, versions()[0], "verified")
    assert entry.source == "p.rules.events/0@7"
    assert entry.recorded_at <= datetime.now(UTC)
    return [entry]


async def test_the_cli_lists_shows_history_and_rolls_back(
    ingest: IngestService, ingest_settings: IngestSettings, cli_env: dict[str, str]
) -> None:
    await publish(ingest_settings, *versions(tags=("returns",)), *versions("other")[:1])
    code, listed = await alignstream_cli(
        cli_env, "rules", "list", "--tenant", "acme", "--tag", "returns"
    )
    assert code == 0, listed
    assert "refunds" in listed
    assert "other" not in listed
    assert "rules 1–1 of 1" in listed
    code, shown = await alignstream_cli(cli_env, "rules", "history", "refunds", "--tenant", "acme")
    assert code == 0, shown
    assert "ops-3" in shown
    assert "not_checked" in shown
    rollback = ("rules", "rollback", "refunds", "--tenant", "acme", "--to")
    code, back = await alignstream_cli(cli_env, *rollback, "1")
    assert code == 0, back
    assert "version 4 has the content of version 1" in back
    code, missing = await alignstream_cli(cli_env, *rollback, "40")
    assert code != 0
    assert "no version 40" in missing
    assert "Traceback" not in missing
    code, bad = await alignstream_cli(cli_env, "rules", "list", "--tenant", "bad tenant")
    assert code == 2
    assert "not a tenant id" in bad


async def test_admin_keys_manage_the_lifecycle_over_rest(
    ingest: IngestService,
    ingest_settings: IngestSettings,
    open_gateway: OpenGateway,
    keys: ApiKeys,
) -> None:
    await publish(ingest_settings, *versions(), *versions("other")[:1], *versions("third")[:1])
    admin, _ = await keys.create("acme", admin=True)
    user, _ = await keys.create("acme")
    async with (
        open_gateway() as gateway,
        httpx.AsyncClient(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as http,
    ):
        page = (await http.get("/rules/refunds/history", params={"limit": 2})).json()
        assert [v["version"] for v in page["data"]] == [3, 2]
        assert page["data"][0]["live"] is True
        assert page["data"][0]["publisher"] == "ops-3"
        assert page["next_before"] == 2
        content = page["data"][1]["rule"]  # version 2 as it was published
        assert (content["text"], content["version"], content["domain"]) == (TEXTS[1], 2, "policy")
        assert "tenant" not in content
        older = (await http.get("/rules/refunds/history", params={"before": 2})).json()
        assert [v["version"] for v in older["data"]] == [1]
        assert older["next_before"] is None

        back = await http.post("/rules/refunds/rollback", params={"wait": True},
                               json={"to_version": 1})  # fmt: skip
        assert back.status_code == 200, back.text
        assert (back.json()["version"], back.json()["outcome"]) == (4, "applied")
        ((partition, offset),) = back.json()["watermark"].items()  # where it landed in the log
        assert int(partition) >= 0
        assert offset >= 1
        assert (await http.get("/rules/refunds")).json()["text"] == TEXTS[0]
        newest = (await http.get("/rules/refunds/history", params={"limit": 1})).json()
        assert newest["data"][0]["publisher"].startswith("gateway:key:")

        off = await http.post("/rules/other/deactivate", params={"wait": True})
        assert off.json()["outcome"] == "applied"
        again = await http.post("/rules/other/deactivate")
        assert (again.json()["outcome"], again.json()["event_id"]) == ("unchanged", None)
        inactive = (await http.get("/rules", params={"status": "inactive"})).json()
        assert [r["rule_id"] for r in inactive["data"]] == ["other"]
        first = (await http.get("/rules", params={"limit": 2})).json()
        assert [r["rule_id"] for r in first["data"]] == ["other", "refunds"]
        rest = await http.get("/rules", params={"limit": 2, "cursor": first["next_cursor"]})
        assert [r["rule_id"] for r in rest.json()["data"]] == ["third"]
        assert rest.json()["next_cursor"] is None

        for path, status in (("/rules/refunds/rollback", 404), ("/rules/nothing/activate", 404)):
            refused = await http.post(path, json={"to_version": 77})
            assert refused.status_code == status, refused.text
        forbidden = await http.post("/rules/refunds/activate",
                                    headers={"Authorization": f"Bearer {user}"})  # fmt: skip
        assert forbidden.status_code == 403


async def test_history_entries_are_frozen_deletes_carry_no_content_and_trees_none(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    record = Record(topic="p.rules.events", partition=1, offset=3, key=b"k", value=b"{}",
                    headers={})  # fmt: skip
    tree = events.JurisdictionTree(tenant="acme", version=1,
                                   nodes=(events.JurisdictionNode(path="CN"),))  # fmt: skip
    delete = events.RuleDelete(tenant="acme", rule_id="refunds", version=4)
    (entry,) = history_entries([(record, tree), (record, delete)], RecordSigner(None))
    assert (entry.op, entry.rule, entry.version, entry.signature) == ("delete", None, 4,
                                                                      "not_checked")  # fmt: skip
    with pytest.raises(ValidationError):
        entry.version = 5  # type: ignore[misc]
    history = RuleHistory(redis_client, prefix)
    assert history.max_versions == 1000  # the documented default
    upsert = HistoryEntry.of(record, versions()[0], "verified")
    await history.record([upsert.model_copy(update={"version": v}) for v in (1, 2, 3)])
    assert [e.version for e in await history.versions("acme", "refunds", limit=0)] == [3]
    assert (await history.at("acme", "refunds", 2)).version == 2  # type: ignore[union-attr]
    assert await history.at("acme", "refunds", 9) is None
    assert len(await history.versions("acme", "refunds")) == 3  # default limit: up to 100
