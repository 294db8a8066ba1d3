"""The shell lines the README and docs show must do what they seem to: an
unquoted ``<word`` is an input redirect (``grep -A3 <interface file`` reads a
file named ``interface``), which no command we document means."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(path: Path) -> list[str]:
    """The first line of each ``$ `` command (a trailing ``\\`` continues it)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[2:].removesuffix("\\") for line in lines if line.startswith("$ ")]


def input_redirects(command: str) -> list[str]:
    """The targets of ``<`` redirects in ``command`` (heredocs ``<<`` are fine)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    tokens = list(lexer)
    return [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "<"]


def test_the_check_catches_an_unquoted_angle_bracket() -> None:
    assert input_redirects("grep -A3 <interface dom.xml") == ["interface"]
    assert input_redirects("grep -A3 '<interface' dom.xml") == []
    assert input_redirects("cat > f <<'EOF'") == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_commands_redirect_no_input(path: Path) -> None:
    for command in commands(path):
        assert input_redirects(command) == [], f"{path.name}: {command}"
