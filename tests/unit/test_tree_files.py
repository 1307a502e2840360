"""Tree files for ``alignstream jurisdictions publish``: errors name the file (and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.jurisdictions import read_tree_file


def test_a_tree_file_with_paths_and_aliases(tmp_path: Path) -> None:
    path = tmp_path / "tree.json"
    path.write_text(
        '\ufeff{"nodes": ["US", {"path": "US/CA", "aliases": ["California"]}],'
        ' "default_scope": ["US"], "version": 7}',
        encoding="utf-8",
    )
    tree = read_tree_file(path, tenant="acme")
    assert [n.path for n in tree.nodes] == ["US", "US/CA"]
    assert tree.nodes[1].aliases == ("California",)
    assert (tree.version, tree.default_scope, tree.tenant) == (7, ("US",), "acme")
    assert read_tree_file(path, tenant="acme", version=9).version == 9


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"nodes": ["US",\n  ]', "tree.json:2:3"),  # bad JSON: line and column
        ("[1, 2]", "expected a JSON object"),
        ('{"nodes": ["US/CA"]}', "parent 'US' is not declared"),
        ('{"nodes": ["US"], "default_scope": ["EU"]}', "default scope 'EU'"),
        ('{"nodes": [{"path": "US", "aliases": ["' + "x" * 100 + '"]}]}', "at most 64"),
    ],
)
def test_bad_tree_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tree.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as raised:
        read_tree_file(path, tenant="acme")
    assert str(path) in str(raised.value)


def test_a_binary_tree_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "tree.json"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_tree_file(path, tenant="acme")
