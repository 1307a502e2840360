"""The README's research examples run on a fresh clone: every file they name is one of the
project's samples (examples/data/), read by the same loader the command's job uses; the
commands that need no model run as the README writes them."""

from __future__ import annotations

import json
import shlex

import redis.asyncio as aioredis

from services.grading.datasets import load_course_correction, load_exam
from services.grading.research.seeds import read_query_file
from services.ingest.app import IngestService
from shared import events
from shared.memory.jurisdictions import JurisdictionMap
from shared.opo import opo_rules, opo_tree, read_jsonl, read_province2laws
from shared.prompt_sets import PromptSetStore
from shared.settings import RedisSettings
from tests.integration.helpers import alignstream_cli
from tests.integration.test_readme import COMMANDS, ROOT

DATA = ROOT / "examples" / "data"


def data_files() -> set[str]:
    named = set()
    for line in COMMANDS:
        named |= {t for t in shlex.split(line.replace("[", " ").replace("]", " "))
                  if t.startswith("examples/data/")}  # fmt: skip
    return named


def test_every_research_example_reads_a_sample_of_the_project() -> None:
    named = data_files()
    assert len(named) >= 10
    assert not [line for line in COMMANDS if "../shared/" in line]  # a fresh clone has none
    assert {str(p.relative_to(ROOT)) for p in DATA.rglob("*") if p.is_file()} - named == {
        "examples/data/README.md"}  # every sample is used by an example  # fmt: skip


def test_each_sample_is_read_by_its_commands_loader() -> None:
    for seeds, count in (("seeds_alpaca.json", 4), ("seeds_lima.json", 3), ("red_team.txt", 6)):
        assert len(read_query_file(DATA / "drpo" / seeds, seeds)) == count
    exam = load_exam(DATA / "opo" / "exam_law.csv")
    assert len(exam.questions) == 6
    assert len({q.answer for q in exam.questions}) == 4  # not one letter for every answer
    assert all(q.principle for q in exam.questions)  # the oracle strategy's rules
    assert len(load_exam(DATA / "opo" / "examples_law.csv").questions) == 3
    c2eval = load_course_correction(DATA / "course-correction" / "c2eval_sample.jsonl", (10, 20))
    assert len(c2eval.questions) >= 2
    examples = json.loads((DATA / "drpo" / "icl_examples.json").read_text(encoding="utf-8"))
    assert all(a.startswith("<START>\n") and a.endswith("\n<END>") for a in examples.values())


def test_the_opo_sample_resolves_every_location_in_its_tree() -> None:
    tree = opo_tree(read_province2laws(DATA / "opo" / "province2laws.json"), tenant="opo")
    rows = read_jsonl(DATA / "opo" / "law_principles.jsonl")
    rules = list(opo_rules(rows, tenant="opo", domain=events.RuleDomain.LAW,
                           tree=JurisdictionMap.from_tree(tree)))  # fmt: skip
    assert len(rules) == 6  # one per article
    assert {r.jurisdiction for r in rules} == {"CN", "CN/东海", "CN/东海/明州"}
    assert all(r.tags == () for r in rules)  # no location the tree does not know


async def test_the_readme_commands_that_need_no_model_run_as_written(
    cli_env: dict[str, str],
    ingest: IngestService,
    redis_client: aioredis.Redis,
    redis_settings: RedisSettings,
) -> None:
    needs_no_model = ("alignstream prompts load", "alignstream rules import-opo")
    runnable = [line for line in COMMANDS if line.startswith(needs_no_model)]
    assert len(runnable) == 4
    for line in runnable:
        args = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
        if "--name" in args:  # the options shown in brackets, taken as given
            args = [a for a in args if a not in ("--name", "default")]
        code, output = await alignstream_cli(cli_env, *args)
        assert code == 0, f"{line}\n{output}"
    store = PromptSetStore(redis_client, redis_settings.key_prefix)
    loaded = await store.get("acme", "default")
    assert loaded is not None
    assert len(loaded.prompt_set.examples) == 4
