"""DRPO's beam search over system prompts, with checkpoints after every evaluated node.

Level 0 evaluates the start prompt. At each next level, every prompt in the beam gets
``actions`` rewrites from the optimizer (fed the prompt's evaluated answers and its ancestry);
each rewrite is answered and judged on that level's training queries, and the ``beam`` best
rewrites form the next beam. A prompt whose answers already average 4.5 or more is carried
over unchanged instead of rewritten (DRPO skips optimizing it). Identical rewrites are
evaluated once.

The search is deterministic given its inputs (the optimizer and judge run at temperature 0 and
are cached), so a rerun reaches the same nodes in the same order: every finished node is
checkpointed under a key derived from its place in the tree, and a resumed search reads it
back instead of answering and judging it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

GOOD_ENOUGH = 4.5
"""A prompt rewarded this much is not rewritten (DRPO)."""
HISTORY = 5
"""Ancestor prompts shown to the optimizer (DRPO: the last 5)."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    reward: float
    feedback: tuple[dict[str, Any], ...] = ()
    """Per query: the query, the answer and its aspect scores (what the optimizer reads)."""
    judge_calls: int = 0
    """Judge calls the evaluation made (what a resume saves by reading it back)."""


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    level: int
    prompt: str
    parent: str | None
    reward: float
    feedback: tuple[dict[str, Any], ...] = ()
    judge_calls: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "level": self.level,
            "prompt": self.prompt,
            "parent": self.parent,
            "reward": self.reward,
            "feedback": list(self.feedback),
            "judge_calls": self.judge_calls,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        return cls(
            data["key"],
            int(data["level"]),
            data["prompt"],
            data["parent"],
            float(data["reward"]),
            tuple(data["feedback"]),
            int(data.get("judge_calls", 0)),
        )


def node_key(level: int, parent: str | None, prompt: str) -> str:
    """Where a node sits: its level, its parent and its prompt (identical rewrites of one
    parent are one node)."""
    return hashlib.sha256(f"{level}\0{parent}\0{prompt}".encode()).hexdigest()[:24]


class NodeMemo(Protocol):
    """Checkpoints of finished nodes and levels."""

    async def node(self, key: str) -> Node | None: ...

    async def save_node(self, node: Node) -> None: ...


Evaluate = Callable[[str, int], Awaitable[Evaluation]]
"""``(prompt, level)``: answer the level's training queries with the prompt and judge them."""
Propose = Callable[[Node, Sequence[str], int], Awaitable[str | None]]
"""``(node, ancestry prompts oldest first, action)``: a rewrite, or None (unreadable reply)."""


@dataclass(slots=True)
class SearchResult:
    beams: list[list[Node]] = field(default_factory=list)
    """The beam kept at each level, best first."""
    restored: int = 0
    """Nodes read back from checkpoints instead of evaluated."""
    restored_judge_calls: int = 0
    """Judge calls those nodes had cost."""

    @property
    def best_per_level(self) -> list[Node]:
        return [beam[0] for beam in self.beams if beam]


async def beam_search(
    start_prompt: str,
    *,
    beam: int,
    actions: int,
    depth: int,
    evaluate: Evaluate,
    propose: Propose,
    memo: NodeMemo,
    on_level: Callable[[int, list[Node]], Awaitable[None]] | None = None,
) -> SearchResult:
    result = SearchResult()
    nodes: dict[str, Node] = {}

    async def visit(level: int, parent: str | None, prompt: str) -> Node:
        key = node_key(level, parent, prompt)
        if (stored := await memo.node(key)) is not None:
            result.restored += 1
            result.restored_judge_calls += stored.judge_calls
            nodes[key] = stored
            return stored
        evaluation = await evaluate(prompt, level)
        node = Node(
            key,
            level,
            prompt,
            parent,
            evaluation.reward,
            evaluation.feedback,
            evaluation.judge_calls,
        )
        await memo.save_node(node)
        nodes[key] = node
        return node

    def ancestry(node: Node) -> list[str]:
        prompts = [node.prompt]
        current = node
        while current.parent is not None and current.parent in nodes:
            current = nodes[current.parent]
            prompts.append(current.prompt)
        return prompts[::-1][-HISTORY:]

    current = [await visit(0, None, start_prompt)]
    result.beams.append(current)
    if on_level is not None:
        await on_level(0, current)
    for level in range(1, depth + 1):
        children: list[Node] = []
        for node in current:
            if node.reward >= GOOD_ENOUGH:
                rewrites: list[str] = [node.prompt]
            else:
                rewrites = []
                for action in range(1, actions + 1):
                    rewrite = await propose(node, ancestry(node), action)
                    if rewrite and rewrite not in rewrites:
                        rewrites.append(rewrite)
                rewrites = rewrites or [node.prompt]  # nothing readable: keep the prompt
            for prompt in rewrites:
                children.append(await visit(level, node.key, prompt))
        # Stable sort: ties keep the order they were proposed in (deterministic on resume).
        current = sorted(children, key=lambda n: -n.reward)[:beam]
        result.beams.append(current)
        if on_level is not None:
            await on_level(level, current)
    return result
