"""Mutants of the comparisons inside a module's Lua scripts (cosmic-ray mutates Python only, and
a Lua script is a string to it).

A Lua script is a module-level string that calls ``redis.call``. Each relational operator in it
(outside Lua string literals and comments) is replaced by its boundary and negated neighbours:
``<`` by ``<=`` and ``>=``, ``==`` by ``~=``, and so on. Lines with ``no mutate`` in a Lua
comment are left alone (the comment says why).
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SWAPS: dict[str, tuple[str, ...]] = {
    "<": ("<=", ">="),
    "<=": ("<", ">"),
    ">": (">=", "<="),
    ">=": (">", "<"),
    "==": ("~=",),
    "~=": ("==",),
}
_OPERATOR = re.compile(r"~=|==|<=|>=|<|>")
_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")


@dataclass(frozen=True, slots=True)
class LuaMutant:
    line: int
    """1-based line of the module."""
    column: int
    operator: str
    replacement: str
    text: str

    @property
    def name(self) -> str:
        return f"lua/{self.operator}->{self.replacement} line {self.line}: {self.text[:80]}"

    def apply(self, source: str) -> str:
        lines = source.split("\n")
        row = lines[self.line - 1]
        end = self.column + len(self.operator)
        lines[self.line - 1] = row[: self.column] + self.replacement + row[end:]
        return "\n".join(lines)


def _masked(line: str) -> str:
    """The line with Lua string literals and a trailing comment blanked (same length)."""
    line = _LITERAL.sub(lambda m: " " * len(m.group()), line)
    comment = line.find("--")
    return line if comment < 0 else line[:comment] + " " * (len(line) - comment)


def _script_lines(source: str) -> Iterator[int]:
    """Line numbers inside the module's Lua scripts (their first and last lines hold Python's
    quotes and assignment, not Lua)."""
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and "redis.call" in node.value and node.end_lineno is not None):  # fmt: skip
            yield from range(node.lineno + 1, node.end_lineno)


def lua_mutants(source: str) -> list[LuaMutant]:
    lines = source.split("\n")
    mutants = []
    for number in _script_lines(source):
        line = lines[number - 1]
        if "no mutate" in line:
            continue
        for match in _OPERATOR.finditer(_masked(line)):
            for replacement in SWAPS[match.group()]:
                mutants.append(LuaMutant(number, match.start(), match.group(), replacement,
                                         line.strip()))  # fmt: skip
    return mutants


def run_tests(command: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float) -> str:
    """``killed``, ``survived`` or ``timeout``; the whole process group goes on a time-out."""
    process = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return "timeout"
    return "survived" if code == 0 else "killed"


def run_lua_mutants(
    tree: Path, module: str, command: list[str], env: Mapping[str, str], timeout_s: float
) -> list[tuple[LuaMutant, str]]:
    """Each mutant applied to ``module`` of the copied ``tree`` in turn (the original restored
    after each, and on any error), with its outcome."""
    path = tree / module
    original = path.read_text()
    results = []
    try:
        for mutant in lua_mutants(original):
            path.write_text(mutant.apply(original))
            results.append((mutant, run_tests(command, tree, env, timeout_s)))
    finally:
        path.write_text(original)
    return results
