"""A candidate exam's result, kept on the change set it graded (``shared/changeset_gate.py``):
what ``rules promote --require`` checks. Only for the revision the job was submitted against:
a set staged again during the exam keeps no evidence from it."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.changeset_gate import evidence_of
from shared.events import ExamJob, ExamResult
from shared.memory.changesets import ChangeSetStore
from shared.memory.keys import RuleKeys


class CandidateEvidence:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.sets = ChangeSetStore(client, RuleKeys(prefix))

    async def record(self, job: ExamJob, result: ExamResult) -> bool:
        """True when the set keeps this result as its evidence."""
        if job.candidate is None or job.candidate_revision is None:
            return False
        evidence = evidence_of(result, job.candidate_revision)
        if evidence is None:
            return False
        return await self.sets.record_evidence(job.tenant, job.candidate,
                                               job.candidate_revision,
                                               evidence.model_dump_json())  # fmt: skip
