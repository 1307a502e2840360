"""Rule files cannot lose data: every malformed line is an error with its line, never a rule
that silently swallows or drops what the file says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from shared import events
from shared.rulefiles import read_rule_file

HEADER = "rule_id,text\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def texts(path: Path, **kwargs: bool) -> list[str]:
    return [e.rule.text for e in read_rule_file(path, tenant="acme", **kwargs).events
            if isinstance(e, events.RuleUpsert)]  # fmt: skip


def test_an_unterminated_quote_is_an_error_not_a_rule_that_swallows_the_next_rows(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "r.csv", HEADER + 'a,"Returns within 30 days.\nb,Second rule.\n')
    parsed = read_rule_file(path, tenant="acme")
    assert [e.line for e in parsed.errors] == [2]
    assert "never closed" in parsed.errors[0].message
    assert all(
        "Second rule" not in e.rule.text for e in parsed.events if isinstance(e, events.RuleUpsert)
    )


def test_stray_quote_inside_a_field_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", HEADER + 'a,"quoted" then more\n')
    assert [e.line for e in read_rule_file(path, tenant="acme").errors] == [2]


@pytest.mark.parametrize("row", ["a,text,extra", "a"])
def test_a_row_with_another_column_count_is_an_error(tmp_path: Path, row: str) -> None:
    path = write(tmp_path, "r.csv", HEADER + "ok,Fine.\n" + row + "\n")
    parsed = read_rule_file(path, tenant="acme")
    assert [e.line for e in parsed.errors] == [3]
    assert "the header has 2" in parsed.errors[0].message
    assert len(parsed.events) == 1


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", b"\xef\xbb\xbf" + (HEADER + "a,With a BOM.\n").encode())
    assert texts(path) == ["With a BOM."]
    jsonl = write(tmp_path, "r.jsonl", b'\xef\xbb\xbf{"rule_id": "a", "text": "BOM."}\n')
    assert texts(jsonl) == ["BOM."]


def test_a_wrong_header_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "rule_id,txt,colour\na,b,c\nd,e,f\n")
    parsed = read_rule_file(path, tenant="acme")
    assert [e.line for e in parsed.errors] == [1]
    message = parsed.errors[0].message
    assert "unknown columns 'txt', 'colour'" in message
    assert "missing columns text" in message
    assert parsed.events == []


def test_the_same_rule_twice_names_both_lines_or_keeps_the_last(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", HEADER + "a,First.\nb,Other.\na,Second.\n")
    parsed = read_rule_file(path, tenant="acme")
    assert [(e.line, e.message) for e in parsed.errors] == [
        (4, "rule acme:a is also on line 2 (or pass --last-wins)")
    ]
    assert texts(path, last_wins=True) == ["Second.", "Other."]
    jsonl = write(
        tmp_path, "r.jsonl", '{"rule_id": "a", "text": "x"}\n{"rule_id": "a", "text": "y"}\n'
    )
    assert [e.line for e in read_rule_file(jsonl, tenant="acme").errors] == [2]


def test_other_tenants_rules_with_the_same_id_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "tenant,rule_id,text\nacme,a,x\nglobex,a,y\n")
    assert read_rule_file(path).errors == []


def test_latin1_and_binary_files_are_errors_with_a_line(tmp_path: Path) -> None:
    latin = write(tmp_path, "r.csv", (HEADER + "a,ok\nb,caf\xe9\n").encode("latin-1"))
    (error,) = read_rule_file(latin, tenant="acme").errors
    assert (error.line, "not UTF-8" in error.message) == (3, True)
    jsonl = write(tmp_path, "r.jsonl", b'{"rule_id": "a", "text": "caf\xe9"}\n')
    assert "not UTF-8" in read_rule_file(jsonl, tenant="acme").errors[0].message
    binary = write(tmp_path, "r.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "binary" in read_rule_file(binary, tenant="acme").errors[0].message


def test_a_rule_over_the_limit_is_rejected_with_a_hint(tmp_path: Path) -> None:
    long = "x" * (events.MAX_RULE_TEXT_CHARS + 1)
    path = write(tmp_path, "r.csv", HEADER + f"a,{long}\n")
    (error,) = read_rule_file(path, tenant="acme").errors
    assert error.line == 2
    assert "split it into several rules" in error.message


def test_publish_refuses_a_file_with_errors_before_touching_kafka(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", HEADER + 'a,fine\nb,"open\n')
    # An unreachable broker: had anything been published, this would fail differently.
    result = CliRunner().invoke(
        app, ["rules", "publish", str(path), "--tenant", "acme"],
        env={"KAFKA_BOOTSTRAP": "127.0.0.1:1"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{path}:3: invalid CSV" in result.output
    assert "nothing published" in result.output


# Boundaries of the reader (each kills mutants bench.mutation found alive).


def errors_of(path: Path) -> list[tuple[int, str]]:
    return [(e.line, e.message) for e in read_rule_file(path, tenant="acme").errors]


@pytest.mark.parametrize("line", [1, 2, 3])
def test_a_bad_byte_is_reported_on_its_own_line(tmp_path: Path, line: int) -> None:
    good = '{"rule_id": "r%d", "text": "fine"}\n'
    data = "".join(good % i for i in range(line - 1)).encode() + b'{"rule_id": "\xff"}\n'
    ((number, message),) = errors_of(write(tmp_path, "r.jsonl", data))
    assert number == line
    assert "0xff" in message


def test_only_the_first_8192_bytes_decide_that_a_file_is_binary(tmp_path: Path) -> None:
    padding = b" " * 8191
    ((line, message),) = errors_of(write(tmp_path, "bin.jsonl", padding + b"\x00"))
    assert (line, message) == (1, "a binary file, not a JSONL or CSV text file")
    late = errors_of(write(tmp_path, "late.jsonl", padding + b" \x00"))
    assert all("binary" not in message for _, message in late)


def test_header_problems_are_line_1_and_name_every_problem(tmp_path: Path) -> None:
    ((line, message),) = errors_of(write(tmp_path, "h.csv", "rule_id,text,v,text\na,b,c,d\n"))
    assert line == 1
    assert "unknown columns 'v'" in message
    assert "repeated columns text" in message
    assert "missing" not in message
    ((line, message),) = errors_of(write(tmp_path, "q.csv", '"rule_id,text\n'))
    assert line == 1
    assert message.startswith(("invalid CSV header", "header:"))


def test_an_unclosed_quote_names_the_lines_it_spans(tmp_path: Path) -> None:
    spanning = write(tmp_path, "s.csv", HEADER + 'a,ok\nb,"open\nstill\nopen\n')
    ((line, message),) = errors_of(spanning)
    assert line == 3
    assert "(lines 3-5)" in message
    one_line = write(tmp_path, "o.csv", HEADER + 'a,"x"y\n')
    ((line, message),) = errors_of(one_line)
    assert (line, "(this line)" in message) == (2, True)


def test_blank_and_short_rows_do_not_end_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", HEADER + "a,first\n,\nb\nc,third\n")
    parsed = read_rule_file(path, tenant="acme")
    assert [e.line for e in parsed.errors] == [4]
    assert texts(path) == ["first", "third"]


def test_duplicates_do_not_end_the_file_either(tmp_path: Path) -> None:
    lines = "".join(f'{{"rule_id": "{r}", "text": "{t}"}}\n' for r, t in
                    (("a", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("c", "5")))  # fmt: skip
    path = write(tmp_path, "d.jsonl", lines)
    assert texts(path) == ["1", "3", "5"]
    assert texts(path, last_wins=True) == ["4", "3", "5"]


def test_events_with_a_kind_get_the_tenant_and_a_version_now(tmp_path: Path) -> None:
    lines = ('{"kind": "rule.upsert", "rule": {"rule_id": "a", "text": "x"}}\n'
             '{"kind": "rule.delete", "rule_id": "b"}\n')  # fmt: skip
    before = time.time() * 1000
    upsert, delete = read_rule_file(write(tmp_path, "k.bak", lines), tenant="acme").events
    assert isinstance(upsert, events.RuleUpsert)
    assert isinstance(delete, events.RuleDelete)
    assert (upsert.rule.tenant, delete.tenant) == ("acme", "acme")
    assert before - 1 <= upsert.rule.version <= time.time() * 1000 + 1
    assert delete.version == upsert.rule.version


def test_only_an_overlong_text_gets_the_split_hint(tmp_path: Path) -> None:
    long_title = '{"rule_id": "a", "text": "x", "title": "%s"}\n' % ("t" * 600)
    ((_, message),) = errors_of(write(tmp_path, "t.jsonl", long_title))
    assert message.startswith("title:")
    assert "split" not in message
    long_text = '{"rule_id": "a", "text": "%s"}\n' % ("t" * 9000)
    ((_, message),) = errors_of(write(tmp_path, "x.jsonl", long_text))
    assert "split it into several rules" in message
