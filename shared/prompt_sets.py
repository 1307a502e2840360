"""DRPO prompt sets (optimized system prompt + in-context examples) kept in Redis.

A set is written once by ``alignstream prompts load`` with its examples' query embeddings; the
retrieval service picks the examples most similar to each DRPO question. Sets are small (DRPO's
has 16 examples), so similarity is an exact dot product in memory, not an index.

Sets belong to a tenant (``{prefix}:prompt_set:{tenant}:{name}``): a request names a set and
gets its own tenant's set of that name, else a *shared* set the operator loaded for everyone
(``--shared``), never another tenant's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.embedders.base import Vectors
from shared.events import IclExample
from shared.memory.keys import RuleKeys
from shared.redis import as_text

DEFAULT_SET = "default"
SHARED = "_shared"
"""Owner of the sets every tenant may use (no tenant id starts with ``_``)."""


class DrpoSettings(BaseSettings):
    """The DRPO strategy's settings (``ALIGNSTREAM_DRPO_``), one set read by retrieval (which
    set, how many examples it picks) and generation (the fallback files)."""

    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_DRPO_", extra="ignore")

    prompt_set: str = DEFAULT_SET
    """The prompt set in Redis (``alignstream prompts load``) of requests that name none."""
    k: int = Field(default=2, ge=0, le=32)
    """In-context examples per request: picked by similarity (retrieval) for a request that
    sets no ``examples_k``, or the first ``k`` of the fallback set (generation)."""
    system_prompt: Path | None = None
    """Generation's fallback set, used when retrieval attached none: the optimized system
    prompt file..."""
    examples: Path | None = None
    """...and its ``{query: answer}`` JSON in-context examples."""


class PromptSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default=DEFAULT_SET, pattern=r"^\w[\w.:\-]*$", max_length=128)
    system: str = Field(min_length=1, max_length=50_000)
    examples: tuple[IclExample, ...] = ()

    @classmethod
    def from_drpo_files(
        cls, system_file: Path, examples_file: Path | None = None, name: str = DEFAULT_SET
    ) -> PromptSet:
        """DRPO's files: a system prompt text file and ``{query: answer}`` JSON examples."""
        examples: tuple[IclExample, ...] = ()
        if examples_file is not None:
            data = json.loads(examples_file.read_text(encoding="utf-8"))
            examples = tuple(IclExample(query=q, answer=a) for q, a in data.items())
        return cls(name=name, system=system_file.read_text(encoding="utf-8").strip(),
                   examples=examples)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredPromptSet:
    prompt_set: PromptSet
    vectors: Vectors
    """One unit-length row per example (its query), by ``embedder``."""
    embedder: str

    def nearest(self, query: Vectors, k: int) -> tuple[IclExample, ...]:
        """The ``k`` examples whose queries are most similar to the question, best first."""
        if k <= 0 or not self.prompt_set.examples:
            return ()
        scores = self.vectors @ query.reshape(-1)
        best = np.argsort(-scores, kind="stable")[:k]
        return tuple(
            self.prompt_set.examples[i].model_copy(update={"score": float(scores[i])}) for i in best
        )


class PromptSetStore:
    def __init__(self, redis: aioredis.Redis, key_prefix: str) -> None:
        self.redis = redis
        self.keys = RuleKeys(key_prefix)

    def _key(self, owner: str, name: str) -> str:
        return self.keys.prompt_set_key(owner, name)

    async def put(
        self, prompt_set: PromptSet, vectors: Vectors, embedder: str, *, owner: str = SHARED
    ) -> None:
        """Store a set for ``owner``: a tenant id, or ``SHARED`` for every tenant."""
        if len(vectors) != len(prompt_set.examples):
            raise ValueError("one vector per example")
        await self.redis.hset(
            self._key(owner, prompt_set.name),
            mapping={
                "set": prompt_set.model_dump_json(),
                "vectors": np.asarray(vectors, dtype=np.float32).tobytes(),
                "dim": str(vectors.shape[1] if len(vectors) else 0),
                "embedder": embedder,
            },
        )

    async def get_for(self, tenant: str, name: str) -> StoredPromptSet | None:
        """What a request of ``tenant`` naming ``name`` gets: its own set, else the shared."""
        return await self.get(tenant, name) or await self.get(SHARED, name)

    async def get(self, owner: str, name: str) -> StoredPromptSet | None:
        raw = await self.redis.hgetall(self._key(owner, name))
        if not raw:
            return None
        fields = {as_text(k): v for k, v in raw.items()}
        dim = int(fields["dim"])
        packed = fields["vectors"]
        assert isinstance(packed, bytes), "the Redis client must not decode responses"
        vectors = np.frombuffer(packed, dtype=np.float32)
        return StoredPromptSet(
            prompt_set=PromptSet.model_validate_json(fields["set"]),
            vectors=vectors.reshape(-1, dim) if dim else vectors.reshape(0, 0),
            embedder=as_text(fields["embedder"]),
        )

    async def delete(self, owner: str, name: str) -> None:
        await self.redis.delete(self._key(owner, name))

    async def names(self, owner: str) -> list[str]:
        """Names of the sets ``owner`` has (a tenant's own, or ``SHARED``)."""
        start = self._key(owner, "")
        keys = [k async for k in self.redis.scan_iter(match=f"{start}*", count=500)]
        return sorted(as_text(k)[len(start) :] for k in keys)
