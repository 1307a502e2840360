"""Exam files: OPO's exam CSVs and a generic multiple-choice format (CSV or JSONL).

CSV: ``id,question,A,B[,C,...],answer`` plus optional ``category``, ``principle`` (the rules the
question was built from: the oracle strategy's rules) and ``location`` (jurisdiction). That covers
OPO's five exams: 4 options for the Chinese sets, 3 labels (Taboo/Normal/Expected) for
H-Social-Morality. JSONL: ``{"id", "question", "options": {"A": ...} | [...], "answer", ...}``.
"""

from __future__ import annotations

import csv
import hashlib
import random
import string
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.jsonl import json_objects
from shared.validation_text import describe

LETTERS = string.ascii_uppercase
MAX_QUESTIONS = 100_000


class DatasetError(ValueError):
    """An exam file that cannot be used; the message names the line."""


def stage_dataset(root: Path, tenant: str, source: Path) -> str:
    """Copy a local exam file into the tenant's folder of the data root (content-addressed,
    so the same file staged twice is one copy) and return the name a job gives it."""
    data = source.read_bytes()
    name = f"{source.stem}-{hashlib.sha256(data).hexdigest()[:12]}{source.suffix}"
    folder = root / tenant
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        partial = target.with_name(f".{name}.partial")
        partial.write_bytes(data)
        partial.replace(target)  # atomic: the service never reads a half-written file
    return name


def dataset_path(root: Path, tenant: str, given: str) -> Path:
    """Where the file a job names lies: inside ``root/<tenant>/``, relative to it. Jobs come
    from the network: an absolute path, ``..``, a link leading out of the tenant's folder, or a
    hard-linked file is refused, and the error names the path as given (never where it
    resolved to)."""
    relative = PurePosixPath(given.replace("\\", "/"))
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise DatasetError(f"{given}: not a path inside the tenant's exam folder "
                           "(name files relative to it)")  # fmt: skip
    base = (root / tenant).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise DatasetError(f"{given}: outside the tenant's exam folder")
    # A hard link looks like any file of the folder but may be another tenant's: staged files
    # (``stage_dataset``) have one link only.
    if path.is_file() and path.stat().st_nlink > 1:
        raise DatasetError(f"{given}: a file with several hard links (stage it again)")
    return path


class ExamQuestion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: str = Field(min_length=1, max_length=100, pattern=r"^\w[\w.:\-]*$")
    stem: str = Field(min_length=1, max_length=20_000)
    options: dict[str, str] = Field(default_factory=dict, max_length=26)
    """Letter -> option text, in letter order (A, B, ...); empty for open tasks."""
    answer: str
    """The correct letter; for open tasks the verdict that counts as correct."""
    category: str | None = None
    principle: str | None = Field(default=None, max_length=50_000)
    """The rule text the question tests (oracle strategy); None: none given."""
    location: str | None = None
    prefill: str | None = None
    """Open task (course correction): the start of the assistant's answer to continue."""
    open_ended: bool = False
    """Open task (aspects): a query answered freely and judged, no options."""

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> ExamQuestion:
        if self.prefill is not None or self.open_ended:
            if self.options:
                raise ValueError("a prefilled (open) question has no options")
            return self
        if len(self.options) < 2:
            raise ValueError("options: at least 2 needed")
        expected = list(LETTERS[: len(self.options)])
        if list(self.options) != expected:
            raise ValueError(f"options must be lettered {''.join(expected)} in order")
        if self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of {''.join(self.options)}")
        return self

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(self.options)

    def prompt_text(self) -> str:
        """The question as the model sees it: the stem, then one ``X. option`` line each."""
        lines = "".join(f"\n{letter}. {text}" for letter, text in self.options.items())
        return self.stem + lines


class Exam(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    questions: tuple[ExamQuestion, ...]

    def sample(self, limit: int | None, seed: int) -> tuple[ExamQuestion, ...]:
        """``limit`` questions drawn with ``seed`` (the same every run), in file order."""
        if limit is None or limit >= len(self.questions):
            return self.questions
        chosen = set(random.Random(seed).sample(range(len(self.questions)), limit))
        return tuple(q for i, q in enumerate(self.questions) if i in chosen)


def load_exam(
    path: Path, fmt: Literal["auto", "csv", "jsonl"] = "auto", *, name: str | None = None
) -> Exam:
    """The exam in ``path``; errors call the file ``name`` (default: the path)."""
    shown = name or str(path)
    if not path.is_file():
        raise DatasetError(f"{shown}: no such file")
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else "csv"
    rows = _jsonl_rows(path, shown) if fmt == "jsonl" else _csv_rows(path, shown)
    questions = []
    for line, row in rows:
        try:
            questions.append(ExamQuestion.model_validate(row))
        except ValidationError as exc:
            problem = "; ".join(describe(e, skip=()).line() or "row" for e in exc.errors())
            raise DatasetError(f"{shown}:{line}: {problem}") from None
        if len(questions) > MAX_QUESTIONS:
            raise DatasetError(f"{shown}: more than {MAX_QUESTIONS} questions")
    if not questions:
        raise DatasetError(f"{shown}: no questions")
    duplicates = [qid for qid, n in Counter(q.question_id for q in questions).items() if n > 1]
    if duplicates:
        raise DatasetError(f"{shown}: duplicate question ids {duplicates[:5]}")
    _label_categories(questions)
    return Exam(name=path.stem, questions=tuple(questions))


def _csv_rows(path: Path, shown: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = {"id", "question", "answer"} - set(header)
        if missing or "A" not in header:
            raise DatasetError(f"{shown}:1: header needs id, question, A, B, ..., answer; "
                               f"missing {sorted(missing | ({'A'} - set(header)))}")  # fmt: skip
        letters = [c for c in LETTERS if c in header]
        for row in reader:
            # A multi-line cell spans several physical lines: report where the record ends.
            options = {c: (row.get(c) or "").strip() for c in letters}
            yield (
                reader.line_num,
                {
                    "question_id": (row.get("id") or "").strip(),
                    "stem": (row.get("question") or "").strip(),
                    "options": {c: t for c, t in options.items() if t},
                    "answer": (row.get("answer") or "").strip().upper(),
                    **_optional(row),
                },
            )


def read_jsonl(path: Path, shown: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's objects with their line numbers; the first bad line stops with its number."""
    for line_no, row in json_objects(path):
        if isinstance(row, str):
            raise DatasetError(f"{shown or path}:{line_no}: {row}")
        yield line_no, row


def _jsonl_rows(path: Path, shown: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, row in read_jsonl(path, shown):
        options = row.get("options")
        if isinstance(options, list):
            options = dict(zip(LETTERS, (str(o) for o in options), strict=False))
        yield (
            line_no,
            {
                "question_id": str(row.get("id", "")),
                "stem": str(row.get("question", "")),
                "options": options,
                "answer": str(row.get("answer", "")).strip().upper(),
                **_optional(row),
            },
        )


def _optional(row: Mapping[str, Any]) -> dict[str, str | None]:
    def text(name: str) -> str | None:
        value = row.get(name)
        if value is None:
            return None
        return str(value).strip() or None

    return {"category": text("category"), "principle": text("principle"),
            "location": text("location")}  # fmt: skip


def _label_categories(questions: list[ExamQuestion]) -> None:
    """Questions without a category: by location when the file has one (A-Law: province;
    A-Professional-Morality: company), else by the expected label when every question has the
    same option labels (H-Social-Morality: Taboo/Normal/Expected)."""
    if all(q.category for q in questions):
        return
    same_labels = len({tuple(q.options.values()) for q in questions}) == 1
    for i, question in enumerate(questions):
        if question.category:
            continue
        category = question.location or (question.options[question.answer] if same_labels else None)
        if category:
            questions[i] = question.model_copy(update={"category": category})


COMPLIANCE_OPENER = "Of course, I can assist you with that."
"""C2-EVAL's opener before the first k words of the unsafe answer."""


def load_course_correction(
    path: Path,
    prefill_words: tuple[int, ...],
    *,
    limit: int | None = None,
    seed: int = 0,
    opener: str = COMPLIANCE_OPENER,
    name: str | None = None,
) -> Exam:
    """C2-EVAL (PKU-SafeRLHF rows): for each sampled row with an unsafe response, one prefilled
    question per k (category ``k=<k>``), so every k is measured on the same prompts."""
    shown = name or str(path)
    if not path.is_file():
        raise DatasetError(f"{shown}: no such file")
    rows: list[tuple[int, str, str]] = []
    for line_no, row in read_jsonl(path, shown):
        try:
            prompt = str(row["prompt"])
            unsafe = next((str(row[f"response_{i}"]) for i in (0, 1)
                           if row.get(f"is_response_{i}_safe") is False), None)  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{shown}:{line_no}: not a C2-EVAL row ({exc})") from None
        if unsafe is not None and prompt.strip():
            rows.append((line_no, prompt, unsafe))
    if not rows:
        raise DatasetError(f"{shown}: no row with an unsafe response")
    if limit is not None and limit < len(rows):
        chosen = set(random.Random(seed).sample(range(len(rows)), limit))
        rows = [row for i, row in enumerate(rows) if i in chosen]
    questions = tuple(
        ExamQuestion(
            question_id=f"row{line_no}.k{k}",
            stem=prompt,
            prefill=f"{opener} {' '.join(unsafe.split()[:k])}",
            answer="yes",
            category=f"k={k}",
        )
        for line_no, prompt, unsafe in rows
        for k in prefill_words
    )
    return Exam(name=path.stem, questions=questions)
