"""DRPO's beam search on a reward the test defines: the number of "+" in a prompt (capped),
minus its "-"; rewrites add one or the other."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import cast

import pytest

from services.grading.judge.aspects import parse_scores, parse_selection
from services.grading.research.context import JobContext
from services.grading.research.drpo.job import PromptSearch, parse_rewrite, split_queries
from services.grading.research.drpo.search import GOOD_ENOUGH, Evaluation, Node, beam_search
from shared import events
from shared.prompt_sets import StoredPromptSet


def reward(prompt: str) -> float:
    return min(5.0, 1.0 + prompt.count("+") - prompt.count("-"))


class Memo:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    async def node(self, key: str) -> Node | None:
        return self.nodes.get(key)

    async def save_node(self, node: Node) -> None:
        self.nodes[node.key] = node


class Crash(Exception):
    pass


class Counting:
    """evaluate/propose that count their calls; evaluate crashes after ``crash_after``."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.evaluated: list[tuple[str, int]] = []
        self.crash_after = crash_after

    async def evaluate(self, prompt: str, level: int) -> Evaluation:
        if self.crash_after is not None and len(self.evaluated) >= self.crash_after:
            raise Crash
        self.evaluated.append((prompt, level))
        return Evaluation(reward(prompt), judge_calls=2)

    async def propose(self, node: Node, ancestry: Sequence[str], action: int) -> str | None:
        assert ancestry[-1] == node.prompt
        return {1: node.prompt + "+", 2: node.prompt + "-", 3: node.prompt + "-"}[action]


async def run(counting: Counting, memo: Memo, depth: int = 3):  # type: ignore[no-untyped-def]
    return await beam_search(
        "start",
        beam=2,
        actions=3,
        depth=depth,
        evaluate=counting.evaluate,
        propose=counting.propose,
        memo=memo,
    )


async def test_the_search_finds_a_prompt_with_more_reward_than_its_start() -> None:
    result = await run(Counting(), Memo())
    best = result.best_per_level
    assert best[0].reward == 1.0
    assert best[-1].reward == 4.0
    assert best[-1].prompt == "start+++"
    assert [n.reward for n in best] == sorted(n.reward for n in best)
    assert all(len(beam) <= 2 for beam in result.beams)


async def test_identical_rewrites_are_one_node() -> None:
    counting = Counting()
    await run(counting, Memo(), depth=1)
    # start, then "start+" and "start-" (action 3 repeats action 2)
    assert counting.evaluated == [("start", 0), ("start+", 1), ("start-", 1)]


async def test_a_good_enough_prompt_is_carried_over_not_rewritten() -> None:
    counting = Counting()
    result = await beam_search(
        "++++++",
        beam=2,
        actions=3,
        depth=2,
        evaluate=counting.evaluate,
        propose=counting.propose,
        memo=Memo(),
    )
    assert reward("++++++") >= GOOD_ENOUGH
    assert [n.prompt for n in result.best_per_level] == ["++++++"] * 3
    assert len(counting.evaluated) == 3  # one node per level


async def test_a_crashed_search_resumes_without_evaluating_finished_nodes_again() -> None:
    memo = Memo()
    full = await run(Counting(), Memo())
    crashing = Counting(crash_after=4)
    with pytest.raises(Crash):
        await run(crashing, memo)
    assert len(memo.nodes) == 4
    resumed_counter = Counting()
    resumed = await run(resumed_counter, memo)
    done_before = set(crashing.evaluated)
    assert not done_before & set(resumed_counter.evaluated)  # nothing judged twice
    assert resumed.restored == 4
    assert resumed.restored_judge_calls == 8
    assert [n.prompt for n in resumed.best_per_level] == [n.prompt for n in full.best_per_level]


def test_rewrites_are_read_from_json_replies_only() -> None:
    assert parse_rewrite('```json\n{"new_system_prompt": "Be kind.\\\\nBe brief."}\n```') == (
        "Be kind.\nBe brief."
    )
    assert parse_rewrite("Be kind.") is None
    assert parse_rewrite('{"new_system_prompt": ""}') is None
    assert parse_rewrite('{"analysis": "x"}') is None


def test_queries_are_split_once_each_and_the_held_out_part_is_bounded() -> None:
    queries = [f"q{i}" for i in range(20)] + ["q0"]
    train, held = split_queries(queries, 0.5, limit=4, seed=1)
    assert len(train) == 10
    assert len(held) == 4
    assert not set(train) & set(held)
    assert split_queries(queries, 0.5, 4, seed=1) == (train, held)


def test_aspect_selection_and_scores_parse_strictly() -> None:
    chosen = parse_selection('{"reasoning": "r", "aspects": ["safety", "Clarity", "Nope"]}')
    assert chosen == (("Safety", "Clarity"), "r")
    assert parse_selection('{"aspects": ["Safety"]}') is None  # fewer than 2 known
    many = parse_selection(
        '{"aspects": '
        + str(list(["Helpfulness", "Clarity", "Depth", "Safety", "Empathy", "Creativity"])).replace(
            "'", '"'
        )
        + "}"
    )
    assert many is not None
    assert len(many[0]) == 5
    scores = parse_scores(
        '{"Safety": {"score": 4}, "clarity": {"score": "5"}}', ("Safety", "Clarity")
    )
    assert scores == {"Safety": 4, "Clarity": 5}
    assert (
        parse_scores('{"Safety": {"score": 6}, "Clarity": {"score": 5}}', ("Safety", "Clarity"))
        is None
    )
    assert parse_scores('{"Safety": {"score": 4}}', ("Safety", "Clarity")) is None


class _Sets:
    """A prompt-set store holding names only."""

    def __init__(self) -> None:
        self.sets: set[tuple[str, str]] = set()

    async def names(self, owner: str) -> list[str]:
        return sorted(name for o, name in self.sets if o == owner)

    async def delete(self, owner: str, name: str) -> None:
        self.sets.discard((owner, name))


async def test_a_jobs_clean_up_leaves_the_sets_of_jobs_whose_ids_begin_alike() -> None:
    store = _Sets()

    def search(job_id: str) -> PromptSearch:
        ctx = SimpleNamespace(job=SimpleNamespace(job_id=job_id), tenant="acme", prompt_sets=store)
        return PromptSearch(cast(JobContext, ctx), cast(events.PromptOptimizeSpec, None),
                            cast(StoredPromptSet, None), [], [])  # fmt: skip

    jobs = [search(job_id) for job_id in ("j1", "j1-x", "a" * 40 + "1", "a" * 40 + "2")]
    for job in jobs:
        store.sets.add(("acme", job.set_name("Be careful.")))
    assert len(store.sets) == 4  # one name per job
    await jobs[0].drop_candidates()
    await jobs[2].drop_candidates()
    assert store.sets == {("acme", jobs[1].set_name("Be careful.")),
                          ("acme", jobs[3].set_name("Be careful."))}  # fmt: skip
