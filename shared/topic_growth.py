"""Growing topics on a live cluster to the partitions their settings ask for (``alignstream
topics grow``). Kafka only adds partitions, never removes them.

What moves when a keyed topic grows: a key's new records may go to another partition than its
old ones, so the order between a key's records before and after the change is not kept. For the
chat topics (short-lived, read as they come) that only matters for requests in flight at the
moment; for ``rules.events`` (compacted, keyed by rule) a rule's old and new versions may then
sit in different partitions, where compaction cannot drop the older: ingest still applies them
by version (an older version is stale whatever order it arrives in), and a ``memory rebuild``
reads both; the older stays in the log until the rule changes again. Grow while the load is
low; consumer groups rebalance once to take the new partitions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import NewPartitions
from aiokafka.errors import IncompatibleBrokerVersion

from shared.errors import Hinted
from shared.kafka import admin_client
from shared.settings import KafkaSettings
from shared.topic_checks import topic_states
from shared.topics import TopicSpec, all_topics


@dataclass(frozen=True, slots=True)
class Growth:
    topic: str
    had: int
    wanted: int

    @property
    def grows(self) -> bool:
        return self.wanted > self.had


def plan_growth(settings: KafkaSettings, states: dict[str, int],
                specs: Iterable[TopicSpec]) -> list[Growth]:  # fmt: skip
    """Each existing topic whose partitions differ from its setting (pure): those with fewer
    grow; those with more are reported (Kafka cannot shrink a topic)."""
    names = settings.topics
    return [Growth(names(s), states[names(s)], settings.partitions_of(s)) for s in specs
            if names(s) in states and states[names(s)] != settings.partitions_of(s)]  # fmt: skip


async def grow_topics(settings: KafkaSettings, *, dry_run: bool = False) -> list[Growth]:
    """Add partitions to every topic with fewer than its setting; the plan, as carried out."""
    specs = all_topics()
    found = await topic_states(settings, [settings.topics(s) for s in specs])
    plan = plan_growth(settings, {n: state.partitions for n, state in found.items()}, specs)
    growing = {g.topic: NewPartitions(g.wanted) for g in plan if g.grows}
    if growing and not dry_run:
        admin = admin_client(settings)
        await admin.start()
        try:
            await admin.create_partitions(growing)
        except IncompatibleBrokerVersion as exc:
            raise Hinted(
                "this broker cannot add partitions to a topic (no CreatePartitions API)",
                "grow them with the broker's own tools (Apache Kafka: kafka-topics.sh --alter "
                "--topic NAME --partitions N), or recreate the topics",
            ) from exc
        finally:
            await admin.close()
    return plan
