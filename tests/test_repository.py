"""The repository itself: its root holds only what belongs there, and both packages ship their type hints.

Runs after the rest of the suite (files sort last), so a test or a tool that leaves a stray file in the
working directory (podman's conmon once left `oom` there, twice committed) fails here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

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
