"""The repository itself: its root holds only what belongs there, and both packages ship their type hints.

Runs after the rest of the suite (files sort last), so a test or a tool that leaves a stray file in the
working directory (podman's conmon once left `oom` there, twice committed) fails here.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

ALLOWED = {
    ".ci", ".git", ".gitignore", "README.md", "bench", "docs", "examples", "host", "protos", "pyproject.toml",
    "scripts", "sdk", "tests", "tox.ini",
}  # fmt: skip
# Made by the set-up commands and tools, and ignored by git.
LOCAL = {".venv", ".venv-proto", ".tox", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist"}


def test_the_repository_root_holds_only_what_belongs_there() -> None:
    stray = sorted(
        entry.name
        for entry in REPO.iterdir()
        if entry.name not in ALLOWED | LOCAL and not entry.name.endswith(".egg-info") and entry.name != "__pycache__"
    )
    assert stray == [], f"unexpected files at the repository root: {stray}"


def test_both_packages_ship_py_typed(tmp_path: Path) -> None:
    from hostel.envs.sdkwheel import sdk_wheel

    assert (REPO / "host" / "hostel" / "py.typed").is_file() and (REPO / "sdk" / "hostel_sdk" / "py.typed").is_file()
    with zipfile.ZipFile(sdk_wheel(tmp_path)) as wheel:
        assert "hostel_sdk/py.typed" in wheel.namelist()


def _runnable_scripts() -> list[Path]:
    scripts = sorted((REPO / "bench").glob("[!_]*.py")) + sorted((REPO / "scripts").glob("[!_]*.py"))
    return [script for script in scripts if "__main__" in script.read_text()]


@pytest.mark.parametrize("script", _runnable_scripts(), ids=lambda script: f"{script.parent.name}/{script.name}")
def test_every_benchmark_and_script_starts(script: Path) -> None:
    """Nothing else runs them: a benchmark broken by a move elsewhere (an import) showed only when someone ran it."""
    command = [sys.executable, str(script), "--help"]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "usage:" in run.stdout, f"{script.name} --help failed:\n{run.stderr[-2000:]}"


def _documents() -> list[Path]:
    roots = [REPO / "docs", REPO / "examples", REPO / "host", REPO / "sdk", REPO / "bench"]
    found = [REPO / "README.md"]
    for root in roots:
        found += [p for p in root.rglob("*") if p.suffix in (".md", ".py", ".proto", ".yaml", ".toml")]
    return found


def test_the_docs_point_only_inside_the_repository() -> None:
    outside = [
        f"{path.relative_to(REPO)}: {marker}"
        for path in _documents()
        for marker in ("../shared", "SPEC.md", "SPEC §", "CONVENTIONS.md", "PROVIDERS.md")
        if marker in path.read_text(errors="replace")
    ]
    assert outside == [], f"references to files a user who clones the repository does not have: {outside}"


def test_every_doc_the_readme_names_exists() -> None:
    import re

    named = set(re.findall(r"`(?:docs/)?([a-z-]+\.md)`", (REPO / "README.md").read_text())) - {"README.md"}
    missing = sorted(name for name in named if not (REPO / "docs" / name).is_file())
    assert missing == [], f"the README names docs that do not exist: {missing}"
    unnamed = sorted(p.name for p in (REPO / "docs").glob("*.md") if p.name not in named)
    assert unnamed == [], f"docs the README does not mention: {unnamed}"


# A size budget for the code of host/ and sdk/: a module over MODULE_LINES or a function over FUNCTION_LINES must
# be listed here at its current size. The list may only shrink: an entry that grows fails, one that shrank must be
# listed at its new size (a ratchet), and one that fits the budget again must be removed.
MODULE_LINES, FUNCTION_LINES = 600, 80
OVER_BUDGET: dict[str, int] = {}  # empty: everything fits


def _sizes() -> dict[str, tuple[int, int]]:
    """Every module and function of host/ and sdk/ (generated code aside): name -> (lines, budget)."""
    import ast

    sizes = {}
    for root in ("host/hostel", "sdk/hostel_sdk"):
        for path in sorted((REPO / root).rglob("*.py")):
            if "_proto" in path.parts:
                continue
            name = str(path.relative_to(REPO))
            text = path.read_text()
            sizes[name] = (len(text.splitlines()), MODULE_LINES)
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                    key, lines = f"{name}:{node.name}", node.end_lineno - node.lineno + 1
                    sizes[key] = (max(lines, sizes.get(key, (0, 0))[0]), FUNCTION_LINES)  # the longest of a name
    return sizes


def test_modules_and_functions_keep_to_the_size_budget() -> None:
    sizes = _sizes()
    over = {name: lines for name, (lines, budget) in sizes.items() if lines > budget}
    unlisted = {name: lines for name, lines in over.items() if name not in OVER_BUDGET}
    grown = {name: (OVER_BUDGET[name], lines) for name, lines in over.items() if lines > OVER_BUDGET.get(name, lines)}
    shrunk = sorted(name for name in OVER_BUDGET if name not in over)
    lower = {name: (OVER_BUDGET[name], lines) for name, lines in over.items() if lines < OVER_BUDGET.get(name, 0)}
    assert unlisted == {}, f"over the budget ({MODULE_LINES} lines a module, {FUNCTION_LINES} a function): {unlisted}"
    assert grown == {}, f"grew past its allowance (allowed, now): {grown}"
    assert shrunk == [], f"within the budget now: remove from OVER_BUDGET: {shrunk}"
    assert lower == {}, f"shrank: lower its allowance in OVER_BUDGET to its size (allowed, now): {lower}"
