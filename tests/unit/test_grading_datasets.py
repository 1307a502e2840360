"""Exam loaders: OPO's CSV formats, generic JSONL, errors with line numbers, sampling; and how
questions become chat requests and replies become graded answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.grading.asking import ITEM_KEY, JOB_KEY, exam_request, request_id_for
from services.grading.datasets import DatasetError, dataset_path, load_exam, stage_dataset
from services.grading.grader import grade
from services.grading.records import item_of, parse_item
from shared.events import AnswerOutcome, ChatResponse, ErrorInfo, ErrorKind, ExamJob, Strategy
from tests.requirements import require_path

FIXTURES = Path(__file__).parents[1] / "fixtures"
OPO_DATA = Path(__file__).parents[3] / "shared" / "data" / "opo"


def test_opo_zh_csv() -> None:
    exam = load_exam(FIXTURES / "exam_zh.csv")
    assert exam.name == "exam_zh"
    assert [q.question_id for q in exam.questions] == ["q1", "q2", "q3", "q4"]
    q1 = exam.questions[0]
    assert q1.letters == ("A", "B", "C", "D")
    assert q1.answer == "B"
    assert q1.prompt_text() == (
        "在示例省，商店收到顾客退货申请后，应当在多少日内处理？\nA. 3日\nB. 7日\nC. 15日\nD. 30日"
    )
    assert q1.principle
    assert q1.principle.startswith("示例省消费者保护条例规定")
    assert q1.location == "示例省"
    assert q1.category == "示例省"
    assert exam.questions[1].location is None
    assert exam.questions[1].category is None


def test_social_csv_categories_are_the_expected_labels() -> None:
    exam = load_exam(FIXTURES / "exam_social.csv")
    assert [q.letters for q in exam.questions] == [("A", "B", "C")] * 3
    assert [q.category for q in exam.questions] == ["Taboo", "Expected", "Normal"]


def test_jsonl_with_list_or_dict_options() -> None:
    exam = load_exam(FIXTURES / "exam_en.jsonl")
    assert [q.options["B"] for q in exam.questions] == [
        "30 days", "Only with the customer's consent", "Stop and report it"]  # fmt: skip
    assert exam.questions[1].answer == "B"  # "b" in the file
    assert [q.category for q in exam.questions] == ["refunds", "privacy", "safety"]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("id,question,A,B,answer\n1,Q?,x,y,C\n", ".csv",
         ":2: answer 'C' is not one of AB"),  # no pydantic phrasing
        ("id,question,answer\n1,Q?,A\n", ".csv", ":1: header needs"),
        ('{"id": "1", "question": "Q?", "options": ["x", "y"], "answer": "A"}\n{oops\n', ".jsonl",
         ":2: invalid JSON"),
        ('{"id": "1", "question": "Q?", "options": ["x"], "answer": "A"}\n', ".jsonl",
         ":1: options: at least 2 needed"),
        ("id,question,A,B,answer\n1,Q?,x,y,A\n1,Q2?,x,y,B\n", ".csv", "duplicate question ids"),
        ("id,question,A,B,answer\n", ".csv", "no questions"),
    ],
)  # fmt: skip
def test_bad_files_name_the_line(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    path = tmp_path / f"exam{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace("?", r"\?")):
        load_exam(path)


def test_sampling_is_seeded_and_keeps_file_order() -> None:
    exam = load_exam(FIXTURES / "exam_zh.csv")
    first = exam.sample(2, seed=7)
    assert first == exam.sample(2, seed=7)
    assert len(first) == 2
    assert [exam.questions.index(q) for q in first] == sorted(
        exam.questions.index(q) for q in first
    )
    assert exam.sample(None, seed=1) == exam.questions == exam.sample(99, seed=1)


@require_path(OPO_DATA, "OPO data not beside the checkout (../shared)")
def test_the_published_opo_exams_load() -> None:
    a_law = load_exam(OPO_DATA / "a_law.csv")
    assert len(a_law.questions) == 411
    assert all(len(q.options) == 4 and q.principle for q in a_law.questions)
    social = load_exam(OPO_DATA / "h_social_morality.csv")
    assert len(social.questions) == 2000
    assert {q.category for q in social.questions} == {"Taboo", "Normal", "Expected"}
    for name in ("h_law", "h_basic_morality", "a_professional_morality"):
        assert len(load_exam(OPO_DATA / f"{name}.sample.csv").questions) == 30


def test_exam_request_per_strategy() -> None:
    question = load_exam(FIXTURES / "exam_zh.csv").questions[0]
    job = ExamJob(job_id="j1", tenant="acme", dataset="x.csv", seed=3)
    opo = exam_request(job, question, Strategy.OPO, "p.exam.answers", nonce="n1")
    item = item_of(Strategy.OPO, "q1")
    assert opo.request_id == request_id_for("n1", "acme", "j1", item)
    # Without the job's nonce the id cannot be made: not from public values, nor another's.
    assert request_id_for("", "acme", "j1", item) != opo.request_id
    assert request_id_for("n2", "acme", "j1", item) != opo.request_id
    assert request_id_for("n1", "beta", "j1", item) != opo.request_id
    assert opo.metadata == {JOB_KEY: "j1", ITEM_KEY: "opo|q1"}
    assert opo.scope.jurisdictions == ("示例省",)
    assert opo.params.option_letters == ("A", "B", "C", "D")
    assert opo.params.seed == 3
    assert opo.query == question.prompt_text()
    assert opo.reply_topic == "p.exam.answers"
    oracle = exam_request(job, question, Strategy.ORACLE, "t", nonce="n1")
    assert [r.text for r in oracle.oracle_rules] == [question.principle]
    base = exam_request(job, question, Strategy.BASE, "t", nonce="n1")
    assert base.scope.jurisdictions == ()
    assert base.oracle_rules == ()
    assert len({opo.request_id, oracle.request_id, base.request_id}) == 3
    logprob_job = job.model_copy(update={"scoring": "logprobs"})
    assert (
        exam_request(logprob_job, question, Strategy.BASE, "t", nonce="n1").params.max_tokens == 1
    )


def _reply(
    text: str = "", logprobs: dict[str, float] | None = None, ok: bool = True
) -> ChatResponse:
    error = None if ok else ErrorInfo(kind=ErrorKind.TIMEOUT, message="slow")
    return ChatResponse(request_id="r", tenant="acme", ok=ok, text=text,
                        option_logprobs=logprobs, error=error)  # fmt: skip


def test_grade_by_text_logprobs_and_errors() -> None:
    question = load_exam(FIXTURES / "exam_zh.csv").questions[0]  # answer B
    job = ExamJob(tenant="acme", dataset="x.csv")
    by_text = grade(job, question, Strategy.OPO, _reply("答案是B"), attempts=1)
    assert (by_text.outcome, by_text.chosen, by_text.scored_by) == (
        AnswerOutcome.CORRECT,
        "B",
        "text",
    )
    # auto prefers the logprobs when the backend gives them
    by_logprobs = grade(job, question, Strategy.OPO, _reply("答案是B", {"A": -0.1, "B": -3.0}),
                        attempts=1)  # fmt: skip
    assert (by_logprobs.outcome, by_logprobs.scored_by) == (AnswerOutcome.WRONG, "logprobs")
    text_job = job.model_copy(update={"scoring": "text"})
    assert grade(text_job, question, Strategy.OPO, _reply("答案是B", {"A": -0.1}),
                 attempts=1).outcome is AnswerOutcome.CORRECT  # fmt: skip
    invalid = grade(job, question, Strategy.OPO, _reply("不知道"), attempts=1)
    assert (invalid.outcome, invalid.chosen) == (AnswerOutcome.INVALID, None)
    error = grade(job, question, Strategy.OPO, _reply(ok=False), attempts=3)
    assert (error.outcome, error.attempts) == (AnswerOutcome.ERROR, 3)


def test_a_job_names_files_only_inside_its_tenants_folder(tmp_path: Path) -> None:
    root = tmp_path / "exams"
    (root / "acme" / "sub").mkdir(parents=True)
    (root / "beta").mkdir()
    (root / "beta" / "secret.csv").write_text("x")
    (root / "acme" / "link.csv").symlink_to(root / "beta" / "secret.csv")
    (root / "acme" / "hard.csv").hardlink_to(root / "beta" / "secret.csv")
    assert dataset_path(root, "acme", "sub/a.csv") == (root / "acme" / "sub" / "a.csv").resolve()
    for hostile in ["/etc/passwd", "../beta/secret.csv", "sub/../../beta/secret.csv", "",
                    "link.csv", "hard.csv", "..\\\\beta\\\\secret.csv"]:  # fmt: skip
        with pytest.raises(DatasetError) as caught:
            dataset_path(root, "acme", hostile)
        message = str(caught.value)
        assert message.startswith(f"{hostile}:")  # the path as given ...
        assert str(tmp_path) not in message  # ... never where it resolved to


def test_errors_of_a_loaded_file_name_it_as_the_job_did(tmp_path: Path) -> None:
    path = tmp_path / "exam.csv"
    path.write_text("id,question,A,B,answer\nq1,Q?,a,b,C\n")
    with pytest.raises(DatasetError) as caught:
        load_exam(path, name="exam.csv")
    assert str(caught.value).startswith("exam.csv:2:")
    assert str(tmp_path) not in str(caught.value)


def test_staging_copies_a_file_once_under_a_content_name(tmp_path: Path) -> None:
    source = tmp_path / "my exam.csv"
    source.write_text("id,question,A,B,answer\nq1,Q?,a,b,A\n")
    root = tmp_path / "root"
    name = stage_dataset(root, "acme", source)
    assert name.startswith("my exam-")
    assert name.endswith(".csv")
    assert stage_dataset(root, "acme", source) == name
    assert (root / "acme" / name).read_bytes() == source.read_bytes()
    assert len(list((root / "acme").iterdir())) == 1
    assert load_exam(dataset_path(root, "acme", name)).questions[0].question_id == "q1"


def test_an_item_that_is_not_one_raises() -> None:
    assert parse_item("opo|q1") == (Strategy.OPO, "q1")
    for bad in ["opo", "opo|", "nope|q1", ""]:
        with pytest.raises(ValueError, match=r"exam item|not a valid"):
            parse_item(bad)
