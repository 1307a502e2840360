"""Settings of the grading service (prefix ``ALIGNSTREAM_GRADING_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.grading.judge.client import JudgeSettings, OptimizerSettings
from shared.settings import ServiceSettings


class GradingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ALIGNSTREAM_GRADING_", extra="ignore")

    group_id: str = "alignstream-grading"
    window: int = Field(default=64, ge=1, le=10_000)
    """Most questions of one job in the pipeline at once (a job's ``window`` overrides it).
    Several jobs share the pipeline fairly instead of the first one flooding it."""
    resend_after_s: float = Field(default=600.0, gt=0)
    """An item with no reply after this long is sent again (its request or reply was lost)."""
    unsent_after_s: float = Field(default=10.0, gt=0)
    """An item claimed this long ago whose request was never confirmed published is sent again
    (the grading instance that claimed it crashed in between)."""
    max_attempts: int = Field(default=3, ge=1)
    """Sends per item (error replies and lost ones included) before it counts as an error."""
    sweep_interval_s: float = Field(default=1.0, gt=0)
    """How often active jobs are checked: resends, refills, completion (and resume after a
    restart)."""
    progress_interval_s: float = Field(default=1.0, ge=0)
    """Least time between two progress events of one job."""
    data_root: Path = Path(".alignstream/exams")
    """Exam files of tenant T lie under ``<data_root>/T/`` and a job names its file relative
    to that folder (jobs come from the network: no other file is ever read). ``alignstream
    exam run`` copies a local file there when it shares the folder with the service."""
    output_root: Path | None = None
    """Where research jobs write their outputs (``<output_root>/<tenant>/research/<job>/``);
    None: the data root (a local stack). In a cluster the data root is mounted read-only."""
    batch_max: int = Field(default=256, ge=1)
    judge_concurrency: int = Field(default=32, ge=1)
    """Judge calls in flight at once."""
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    """The judge of open tasks (course correction) and of research jobs."""
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    """DRPO's optimizer model (prompt rewrites); unset: the judge's endpoint."""
    research_lease_s: float = Field(default=30.0, gt=0)
    """A research job is run by the replica holding its lease; a replica that dies loses it
    after this long and another one resumes the job from its checkpoints."""
    research_timeout_s: float = Field(default=3600.0, gt=0)
    """Longest wait for the pipeline's answers to one batch of a research job."""

    @property
    def outputs(self) -> Path:
        return self.output_root or self.data_root
