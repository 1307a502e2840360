"""Every event model goes through the real broker and comes back equal and validated."""

from __future__ import annotations

from datetime import date

from faststream.kafka import KafkaBroker

from shared import events
from shared.settings import KafkaSettings
from shared.testing.topics import TopicReader
from shared.topics import TOPICS
from tests.samples import sample_events


async def test_each_event_model_round_trips(
    client_broker: KafkaBroker, kafka_settings: KafkaSettings, reader: TopicReader
) -> None:
    samples = sample_events()
    assert {type(e) for e in samples} >= {m for spec in TOPICS for m in spec.value_models}
    topic = TOPICS[0]  # one topic keeps the order; the value model is not topic-bound on read
    for event in samples:
        await client_broker.publish(events.encode(event), reader.name(topic), key=b"k")

    records = await reader.read(topic, count=len(samples))

    decoded = [events.ANY_EVENT.validate_json(record.value) for record in records]
    assert decoded == samples
    assert all(record.key == b"k" for record in records)


async def test_rule_dates_and_unicode_survive_the_wire(
    client_broker: KafkaBroker, kafka_settings: KafkaSettings, reader: TopicReader
) -> None:
    from shared.topics import RULES_EVENTS

    upsert = events.RuleUpsert(
        rule=events.Rule(
            tenant="acme",
            rule_id="民法典-1",
            version=3,
            domain=events.RuleDomain.LAW,
            jurisdiction="北京市",
            locale="zh-CN",
            text="公民的合法的私有财产不受侵犯。",
            effective_from=date(2021, 1, 1),
        )
    )
    await client_broker.publish(
        events.encode(upsert), reader.name(RULES_EVENTS), key=upsert.key.encode()
    )
    (record,) = await reader.read(RULES_EVENTS, count=1)
    assert record.key == "acme:民法典-1".encode()
    assert events.RULE_EVENT.validate_json(record.value) == upsert
