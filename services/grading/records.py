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
    def total_answers(self) -> int:
        return self.total_questions * len(self.job.strategies)


def item_of(strategy: Strategy, question_id: str) -> str:
    """One unit of work of a job: a question asked with one strategy."""
    return f"{strategy.value}{ITEM_SEPARATOR}{question_id}"


def parse_item(item: str) -> tuple[Strategy, str]:
    strategy, _, question_id = item.partition(ITEM_SEPARATOR)
    return Strategy(strategy), question_id
