"""What the grading service keeps per job besides its answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.events import ExamJob, JobStatus, Strategy

ITEM_SEPARATOR = "|"


class JobRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    job: ExamJob
    dataset_name: str
    status: JobStatus
    total_questions: int
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def sid(self) -> str:
        """The job's id in the store (``scoped_id``)."""
        return scoped_id(self.job.tenant, self.job.job_id)

    @property
    def total_answers(self) -> int:
        return self.total_questions * len(self.job.strategies)


def scoped_id(tenant: str, job_id: str) -> str:
    """A job's id in the store: unique per tenant (tenant ids hold no ``:``), so tenants
    choosing the same job id never share a job."""
    return f"{tenant}:{job_id}"


def item_of(strategy: Strategy, question_id: str) -> str:
    """One unit of work of a job: a question asked with one strategy."""
    return f"{strategy.value}{ITEM_SEPARATOR}{question_id}"


def parse_item(item: str) -> tuple[Strategy, str]:
    """The strategy and question of an item; ValueError when it is not one."""
    strategy, separator, question_id = item.partition(ITEM_SEPARATOR)
    if not separator or not question_id:
        raise ValueError(f"not an exam item: {item[:200]!r}")
    return Strategy(strategy), question_id
