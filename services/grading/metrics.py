"""The grading service's own metric families."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ANSWERS = Counter(
    "alignstream_exam_answers_total", "Graded exam answers, by outcome.", ["strategy", "outcome"]
)
DUPLICATES = Counter(
    "alignstream_exam_duplicate_replies_total", "Replies to items already graded (ignored)."
)
RESENDS = Counter("alignstream_exam_resends_total", "Questions sent again.", ["reason"])
ACTIVE_JOBS = Gauge("alignstream_exam_jobs_active", "Exam jobs running.")
ACCURACY = Gauge(
    "alignstream_exam_accuracy", "Accuracy of the latest job per dataset.", ["dataset", "strategy"]
)
PROGRESS = Gauge(
    "alignstream_exam_progress_ratio", "Share of the latest job's items answered.", ["dataset"]
)
