"""The exam tasks, by name: each reads its files, asks its questions and grades its replies."""

from __future__ import annotations

from services.grading.tasks.aspects import Aspects
from services.grading.tasks.base import Asking, BoundedJudge, GradingTask, Reply
from services.grading.tasks.course_correction import CourseCorrection
from services.grading.tasks.mcq import MultipleChoice
from shared.events import ExamTask

TASKS: dict[ExamTask, GradingTask] = {
    ExamTask.MCQ: MultipleChoice(),
    ExamTask.COURSE_CORRECTION: CourseCorrection(),
    ExamTask.ASPECTS: Aspects(),
}

__all__ = ["TASKS", "Asking", "BoundedJudge", "GradingTask", "Reply"]
