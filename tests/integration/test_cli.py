"""The ``alignstream`` command against the real stack, run as a separate process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from services.grading.research.store import ResearchStore
from shared import events
from shared.devstack.process import free_ports_in_a_row
from shared.devstack.servers import free_port
from shared.prompt_sets import SHARED, PromptSetStore
from shared.settings import RedisSettings
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS

FIXTURES = Path(__file__).parent.parent / "fixtures"


def alignstream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_stack_up_status_down(tmp_path: Path) -> None:
    ports = ["--state-dir", str(tmp_path), "--kafka-port", str(free_port()),
             "--redis-port", str(free_port())]  # fmt: skip
    try:
        up = alignstream("stack", "up", *ports)
        assert up.returncode == 0, up.stderr + up.stdout
        # The hint names this state folder: without it, --env would read the default one.
        assert f'eval "$(alignstream stack up --state-dir {tmp_path} --env)"' in up.stderr
        status = alignstream("stack", "status", *ports)
        assert status.returncode == 0
        assert status.stdout.count("yes") == 4  # two servers, running and healthy
    finally:
        assert alignstream("stack", "down", *ports).returncode == 0
    after = alignstream("stack", "status", *ports)
    assert after.returncode == 1
    assert not (tmp_path / "kafka.pid").exists()


def test_durable_stack_up_status_down(tmp_path: Path) -> None:
    ports = ["--state-dir", str(tmp_path), "--kafka-port", str(free_port()),
             "--redis-port", str(free_port())]  # fmt: skip
    try:
        s3_port = str(free_ports_in_a_row(8))  # SeaweedFS takes 8 ports from this one
        up = alignstream("stack", "up", "--durable", "--s3-port", s3_port, *ports)
        assert up.returncode == 0, up.stderr + up.stdout
        status = alignstream("stack", "status", *ports)  # remembered: durable, same S3 ports
        assert status.returncode == 0
        assert status.stdout.count("yes") == 6  # S3, broker and Redis, running and healthy
        switch = alignstream("stack", "up", "--in-memory", *ports)
        assert switch.returncode == 1
        assert "already runs durable" in switch.stderr
        assert f"stack down --state-dir {tmp_path}" in switch.stderr  # the folder it runs from
    finally:
        assert alignstream("stack", "down", *ports).returncode == 0
    assert not (tmp_path / "s3.pid").exists()
    assert not (tmp_path / "kafka.pid").exists()


async def test_publish_refuses_a_file_with_bad_lines(
    cli_env: dict[str, str], reader: TopicReader
) -> None:
    env = cli_env
    bad = alignstream(
        "rules", "publish", str(FIXTURES / "rules_bad.jsonl"), "--tenant", "acme", env=env
    )
    assert bad.returncode == 2
    for line in (2, 3, 4, 5):
        assert f"rules_bad.jsonl:{line}:" in bad.stderr
    assert "nothing published" in bad.stderr

    partial = alignstream(
        "rules", "publish", str(FIXTURES / "rules_bad.jsonl"), "--tenant", "acme",
        "--skip-invalid", env=env,
    )  # fmt: skip
    assert partial.returncode == 0, partial.stdout + partial.stderr
    records = await reader.read(RULES_EVENTS, count=1)
    published = events.RULE_EVENT.validate_json(records[0].value)
    assert isinstance(published, events.RuleUpsert)
    assert published.rule.rule_id == "ok"  # and nothing before it: the refused run sent nothing


async def test_prompts_load_and_list(
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    system = tmp_path / "system.txt"
    system.write_text("Be helpful and harmless.\n", encoding="utf-8")
    examples = tmp_path / "examples.json"
    examples.write_text(json.dumps({"How do I bake bread?": "<START>\nKnead.\n<END>",
                                    "Capital of France?": "<START>\nParis\n<END>"}))  # fmt: skip
    env = cli_env
    loaded = alignstream("prompts", "load", "--system", str(system), "--examples", str(examples),
                         "--name", "safety", env=env)  # fmt: skip
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "2 examples" in loaded.stdout
    stored = await PromptSetStore(redis_client, redis_settings.key_prefix).get(SHARED, "safety")
    assert stored is not None
    assert stored.prompt_set.system == "Be helpful and harmless."
    assert stored.vectors.shape == (2, 512)
    listed = alignstream("prompts", "list", env=env)
    assert "safety" in listed.stdout
    assert "use" in listed.stdout


def test_topics_create_strict_fails_on_partition_drift(cli_env: dict[str, str]) -> None:
    """The chart's topics Job runs ``--strict``: a topic with other partition counts than the
    specification (keyed order and the autoscalers' caps rely on them) fails the release."""
    as_created = {**cli_env, "ALIGNSTREAM_KAFKA_PARTITIONS_OVERRIDE": "2"}  # the test's topics
    matching = alignstream("topics", "create", "--strict", env=as_created)
    assert matching.returncode == 0, matching.stdout + matching.stderr
    drifted = alignstream("topics", "create", "--strict", env=cli_env)  # the spec says 6
    assert drifted.returncode == 1
    assert "2 partitions, the spec says 6" in drifted.stderr
    lenient = alignstream("topics", "create", env=cli_env)
    assert lenient.returncode == 0  # reported, not fatal, without --strict
    assert "2 partitions, the spec says 6" in lenient.stderr
    # One topic given more partitions in the settings: listed and checked with them, its growth
    # planned. Tansu has no CreatePartitions API: the command says so and what to do instead.
    wider = {**as_created, "ALIGNSTREAM_KAFKA_PARTITIONS": '{"chat.requests": 3}'}
    listed = alignstream("topics", "list", env=wider)
    assert re.search(r"chat\.requests\s*│[^│]*│\s*3\s*│", listed.stdout), listed.stdout
    checked = alignstream("topics", "check", env=wider)
    assert checked.returncode == 1
    assert "chat.requests: 2 partitions, the spec says 3 (alignstream topics grow" in checked.stderr
    planned = alignstream("topics", "grow", "--dry-run", env=wider)
    assert "chat.requests: would grow from 2 to 3 partitions" in planned.stdout, planned.stderr
    grown = alignstream("topics", "grow", env=wider)
    if grown.returncode != 0:  # a broker without CreatePartitions (Tansu)
        assert "cannot add partitions" in grown.stderr
        assert "kafka-topics.sh --alter" in grown.stderr
    else:  # a broker that grows topics (Apache Kafka): the set matches again
        assert "chat.requests: grown from 2 to 3 partitions" in grown.stdout
        assert alignstream("topics", "check", env=wider).returncode == 0


async def test_research_jobs_listed_shown_by_prefix_and_cancelled(
    redis_settings: RedisSettings, redis_client: aioredis.Redis, cli_env: dict[str, str]
) -> None:
    store = ResearchStore(redis_client, redis_settings.key_prefix)
    spec = events.ConstitutionDiscoverSpec(prompts="p.txt")
    job = events.ResearchJob(tenant="acme", spec=spec, job_id="disc-0001")
    await store.create(job)
    await store.create(events.ResearchJob(tenant="acme", spec=spec, job_id="disc-0002"))
    listed = alignstream("research", "list", "--tenant", "acme", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.index("disc-0002") < listed.stdout.index("disc-0001")  # newest first
    shown = alignstream("research", "show", "disc-0001", "--tenant", "acme", env=cli_env)
    assert "constitution-discover job disc-0001: running" in shown.stdout
    several = alignstream("research", "show", "disc", "--tenant", "acme", env=cli_env)
    assert several.returncode == 1
    assert "matches several research jobs" in several.stderr
    other = alignstream("research", "show", "disc-0001", "--tenant", "globex", env=cli_env)
    assert (other.returncode, "no research job" in other.stderr) == (1, True)
    cancelled = alignstream("research", "cancel", "disc-0001", "--tenant", "acme", env=cli_env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    record = await store.get(f"acme:{job.job_id}")
    assert record is not None
    assert record.status is events.JobStatus.CANCELLED
    again = alignstream("research", "cancel", "disc-0001", "--tenant", "acme", env=cli_env)
    assert (again.returncode, "already" in again.stderr) == (1, True)


def test_search_and_chat_say_what_is_wrong_with_their_input(cli_env: dict[str, str]) -> None:
    silent = alignstream("chat", "  ", "--tenant", "acme", env=cli_env)
    assert (silent.returncode, "the question is empty" in silent.stderr) == (2, True)
    blank = alignstream("rules", "search", "   ", "--tenant", "acme", env=cli_env)
    assert (blank.returncode, "the question is empty" in blank.stderr) == (2, True)
    bad = alignstream("rules", "search", "refunds?", "--tenant", "bad tenant", env=cli_env)
    assert bad.returncode == 2
    assert "'bad tenant' is not a tenant id" in bad.stderr
    empty = alignstream("rules", "search", "refunds?", "--tenant", "nobody", env=cli_env)
    assert empty.returncode == 1
    assert "tenant nobody has no rules in the memory" in empty.stderr
    assert "alignstream rules publish FILE --tenant nobody" in empty.stderr
