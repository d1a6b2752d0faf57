"""Run OGX's own integration suites against OGX's own providers, in process and then bridged through hostel.

    python scripts/ogx_suites.py [--suite files --suite vector_io] [--workdir DIR] [--json FILE]

Sets up, under the work directory (kept, so a second run reuses it):

- a Python 3.12 venv with OGX 1.5 from PyPI, its client, the test dependencies the suites import, the in-process
  providers' own packages, and this repository's hostel;
- OGX's integration tests, from the ogx 1.5.0 sdist (which carries ``tests/``);
- tiktoken's ``cl100k_base`` file (faiss loads it at start; the ``litellm`` wheel on PyPI ships a copy), since
  nothing but the package index is reachable.

Then, for each suite, starts ``ogx run`` twice on 127.0.0.1 — the providers in process, then the same providers
through hostel's bridge (``module: hostel``, the provider named by its own type) — with inference answered from
OGX's recorded responses (``OGX_TEST_INFERENCE_MODE=replay``), runs the same OGX test files against each, and
prints a table (suite, passed in process, passed bridged, time each); ``--json`` writes it with every test's
outcome both ways. Exit status 0 when every suite passes the same tests both ways, else 1.

Suites: ``files`` (``inline::localfs``), ``vector_io`` (``inline::faiss`` and ``inline::sqlite-vec``),
``batches`` (``inline::reference``, which reads its input file and writes its output file through the server's
Files API and runs each request through the server's inference), ``inference`` (``remote::ollama``, its calls
to Ollama answered from OGX's recordings in the worker, as in the server: the bridge passes OGX's test settings on),
``responses`` (``inline::builtin``, OGX's agent loop, which calls the server's inference, vector stores, files,
tool runtimes, conversations and prompts; OGX's "gpt" setup, OpenAI's calls replayed from the recordings; its web
search and MCP tool runtimes bridged too), ``messages`` and ``interactions`` (OGX's Anthropic Messages and Google
Interactions APIs, ``inline::builtin`` each) and ``file_processors`` (``inline::auto``, a PDF upload carried to it).
Each suite's configs, test setup and known differences are in ``ogx_suite_configs.py`` beside this script: a test
whose outcome differs bridged fails the script unless its ``EXPECTED`` names it with its reason (or ``RACES``, for
a test that races its own server).

sqlite-vec is a SQLite extension, which a Python built without ``--enable-loadable-sqlite-extensions`` (pyenv's
default) cannot load, in process or anywhere. With such a Python the script installs ``pysqlite3-binary`` (the
same ``sqlite3`` module, built on a SQLite that can) and a ``sitecustomize`` that puts it in the place of
``sqlite3``, on ``PYTHONPATH`` for both servers and, through the bridged providers' ``env:`` and
``pip_packages``, for their workers: both ways alike. Where not even that installs, sqlite-vec's
parametrizations are deselected, by name, both ways.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from ogx_suite_configs import EXPECTED, RACES, SETUPS, SQLITE3_STAND_IN, VECTOR_IO_FILES, configs

REPO = Path(__file__).resolve().parent.parent
OGX_VERSION = "1.5.0"
# What the suites and the in-process providers import (OGX's "dev" group names them; only these are needed here).
TEST_PACKAGES = [
    f"ogx=={OGX_VERSION}", f"ogx-client=={OGX_VERSION}", "pytest>=8.4,<9.1", "pytest-asyncio", "pytest-timeout",
    "requests", "openai", "aiosqlite", "sqlalchemy[asyncio]", "aiohttp", "chardet", "pypdf", "google-genai",
    "ollama", "faiss-cpu", "sqlite-vec", "markitdown[all]", "tiktoken",
    "mcp>=2.0", "langchain-core>=1.6.3", "langchain-openai>=1.2.2", "langgraph",  # the responses suite's
]  # fmt: skip
SUITES = ["files", "vector_io", "batches", "inference", "responses", "messages", "interactions", "file_processors"]
TIKTOKEN_CL100K = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # cl100k_base's name in tiktoken's cache
_STAND_IN = '''"""Written by hostel's scripts/ogx_suites.py: this Python's sqlite3 cannot load SQLite extensions,
and sqlite-vec is one. pysqlite3, the same module built on a SQLite that can, stands in for it: in both servers
and in the bridged workers alike."""
import sys

try:
    import pysqlite3
    import pysqlite3.dbapi2
except ImportError:
    pass
else:
    sys.modules["sqlite3"] = pysqlite3
    sys.modules["sqlite3.dbapi2"] = pysqlite3.dbapi2
'''


def log(message: str) -> None:
    print(f"[ogx-suites] {message}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs: object) -> None:
    log(" ".join(command[:6]) + (" ..." if len(command) > 6 else ""))
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def uv() -> str:
    import uv as uv_package

    return str(uv_package.find_uv_bin())


def python312() -> str | None:
    """A Python 3.12 where hostel finds one (PATH, pyenv, uv), or ``None``."""
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "python", "3.12"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def setup(workdir: Path) -> tuple[Path, Path, Path]:
    """The server venv, OGX's source tree (its tests), the tiktoken cache directory."""
    venv = workdir / "venv"
    if not (venv / "bin" / "ogx").exists():
        python = python312()
        if python is None:
            raise SystemExit(f"OGX {OGX_VERSION} needs Python 3.12; `hostel python 3.12` finds none")
        run([uv(), "venv", "--quiet", "--python", python, str(venv)])
    # Every run (quick when nothing is missing): a kept work directory may predate a suite's packages.
    run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *TEST_PACKAGES])
    # This checkout's hostel, every run (a kept work directory must not test an older one).
    run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--reinstall-package", "hostel",
         str(REPO)])  # fmt: skip
    source = workdir / f"ogx-{OGX_VERSION}"
    if not (source / "tests" / "integration").is_dir():
        download = workdir / "download"
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--ignore-requires-python", "-d", str(download), f"ogx=={OGX_VERSION}"])  # fmt: skip
        with tarfile.open(next(download.glob("ogx-*.tar.gz"))) as archive:
            archive.extractall(workdir, filter="data")
    tiktoken = workdir / "tiktoken"
    if not (tiktoken / TIKTOKEN_CL100K).exists():
        wheels = workdir / "litellm"
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
             "-d", str(wheels), "litellm"])  # fmt: skip
        with zipfile.ZipFile(next(wheels.glob("litellm-*.whl"))) as wheel:
            tiktoken.mkdir(parents=True, exist_ok=True)
            member = f"litellm/litellm_core_utils/tokenizers/{TIKTOKEN_CL100K}"
            (tiktoken / TIKTOKEN_CL100K).write_bytes(wheel.read(member))
    return venv, source, tiktoken


def loads_sqlite_extensions(venv: Path, python_path: Path | None = None) -> bool:
    probe = "import sqlite3; print(hasattr(sqlite3.connect(':memory:'), 'enable_load_extension'))"
    env = {**os.environ, "PYTHONPATH": str(python_path)} if python_path is not None else None
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip() == "True"


def sqlite3_stand_in(workdir: Path, venv: Path) -> Path | None:
    """Where the venv's sqlite3 cannot load extensions: a directory to put on ``PYTHONPATH`` whose
    ``sitecustomize`` puts pysqlite3 in its place (installed in the venv here). ``None`` if none is needed, or if
    the stand-in cannot be installed or does not load extensions either."""
    if loads_sqlite_extensions(venv):
        return None
    try:
        run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), SQLITE3_STAND_IN])
    except subprocess.CalledProcessError:
        log(f"{SQLITE3_STAND_IN} did not install: sqlite-vec's tests will be deselected")
        return None
    directory = workdir / "sqlite3-stand-in"
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(_STAND_IN)
    return directory if loads_sqlite_extensions(venv, directory) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(venv: Path, config: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``ogx run`` on a free loopback port until its /v1/health answers; stopped (and its workers with it) after."""
    port = free_port()
    with log_path.open("wb") as out:
        # In this script's process group: whoever stops the script's group stops the server (and its workers).
        proc = subprocess.Popen(
            [str(venv / "bin" / "ogx"), "run", str(config), "--port", str(port), "--insecure"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"ogx run {config.name} exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/v1/health", timeout=2) as reply:
                if reply.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ogx run {config.name} was not healthy within 900 s; see {log_path}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()  # its workers follow it (they die with their parent)
                proc.wait()


def hostel_workers(home: Path) -> list[str]:
    """The envs (``builtin-1a2b...``) of the hostel workers running now from ``home``: what a bridged server runs
    its providers in, and an in-process one nothing (one server runs at a time here)."""
    envs = home.resolve() / "envs"
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            program = Path((proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace"))
            if program.is_relative_to(envs) and len(program.relative_to(envs).parts) > 1:
                found.add(program.relative_to(envs).parts[0])
    return sorted(found)


def outcomes(report: Path) -> dict[str, str]:
    """Each test's outcome in a JUnit XML report: passed, failed, error or skipped."""
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = next((k for k in ("error", "failure", "skipped") if k in kinds), "passed")
        found[f"{case.get('classname')}::{case.get('name')}"] = "failed" if outcome == "failure" else outcome
    return found


@dataclass
class Run:
    """One suite against one server."""

    tests: dict[str, str]  # test id -> passed, failed, error, skipped
    seconds: float
    log: str
    workers: list[str]  # the envs of the hostel workers the server ran (none in process)

    def count(self, *outcomes: str) -> int:
        return sum(outcome in outcomes for outcome in self.tests.values())


@dataclass
class SuiteResult:
    suite: str
    in_process: Run
    bridged: Run
    deselected: str = ""
    note: str = ""

    @property
    def differ(self) -> list[str]:
        """The tests whose outcome is not the same both ways."""
        names = set(self.in_process.tests) | set(self.bridged.tests)
        return sorted(n for n in names if self.in_process.tests.get(n) != self.bridged.tests.get(n))

    @property
    def unexpected(self) -> list[str]:
        """The tests whose outcome differs without a reason in ``EXPECTED``, and those named there that do not (a
        test in ``RACES`` may go either way)."""
        expected = set(EXPECTED.get(self.suite, {}))
        return sorted((set(self.differ) ^ expected) - set(RACES.get(self.suite, {})))


@dataclass
class Setup:
    venv: Path
    source: Path  # OGX's source tree, its tests in it
    tiktoken: Path
    workdir: Path
    home: Path  # HOSTEL_HOME of the bridged providers
    sqlite3_stand_in: Path | None = None  # see sqlite3_stand_in()


def run_suite(suite: str, where: Setup) -> SuiteResult:
    stand_in = where.sqlite3_stand_in if suite == "vector_io" else None
    sqlite_vec = stand_in is not None or loads_sqlite_extensions(where.venv)
    in_process, bridged = configs(suite, sqlite_vec=sqlite_vec, stand_in=stand_in)
    if suite != "vector_io":
        paths = [f"tests/integration/{suite}"]
    else:
        paths = [f"tests/integration/vector_io/{name}" for name in VECTOR_IO_FILES]
    select = [] if suite != "vector_io" or sqlite_vec else ["-k", "not sqlite-vec"]
    runs = {}
    for mode, config in (("in_process", in_process), ("bridged", bridged)):
        run_dir = Path(tempfile.mkdtemp(prefix=f"{suite}-{mode}-", dir=where.workdir))
        config_path = run_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {
            **os.environ,
            "STATE": str(run_dir / "state"),
            "HOSTEL_HOME": str(where.home),
            "TIKTOKEN_CACHE_DIR": str(where.tiktoken),
            "OGX_TEST_INFERENCE_MODE": "replay",
            "OGX_TEST_RECORDING_DIR": str(where.source / "tests" / "integration" / "common"),
            "OLLAMA_URL": "http://127.0.0.1:11434/v1",
            **({"PYTHONPATH": str(stand_in)} if stand_in is not None else {}),
        }
        started = time.monotonic()
        with server(where.venv, config_path, env, run_dir / "server.log") as url:
            report = run_dir / "report.xml"
            # A test that hangs fails on its own (pytest-timeout) rather than stalling the suite.
            command = [str(where.venv / "bin" / "python"), "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider",
                       "--timeout=300", f"--stack-config={url}", *SETUPS.get(suite, ["--setup=ollama"]),
                       f"--junitxml={report}", *select]  # fmt: skip
            log(f"{suite} {mode}: OGX's tests against {url}")
            subprocess.run(command, cwd=where.source, env=env, check=False, stdout=subprocess.DEVNULL)
            tests = outcomes(report)
            workers = hostel_workers(where.home)
        runs[mode] = Run(tests, round(time.monotonic() - started, 1), str(run_dir / "server.log"), workers)
    deselected = "sqlite-vec: this Python cannot load SQLite extensions" if select else ""
    note = f"sqlite3 is {SQLITE3_STAND_IN}'s, both ways: this Python's cannot load extensions" if stand_in else ""
    return SuiteResult(suite, runs["in_process"], runs["bridged"], deselected, note)


def table(results: list[SuiteResult]) -> str:
    """The results as a Markdown table (what docs/llama-stack-bridge.md shows)."""
    rows = [
        "| suite | in process: passed / failed / skipped | bridged: passed / failed / skipped | time (in, bridged) |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        a, b = r.in_process, r.bridged
        rows.append(
            f"| {r.suite} | {a.count('passed')} / {a.count('failed', 'error')} / {a.count('skipped')} "
            f"| {b.count('passed')} / {b.count('failed', 'error')} / {b.count('skipped')} "
            f"| {a.seconds:.0f} s, {b.seconds:.0f} s |"
        )
    return "\n".join(rows)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: stop the servers on the way out
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=SUITES, help="default: all")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hostel-ogx-suites")
    parser.add_argument("--home", type=Path, default=None, help="HOSTEL_HOME for the bridged providers' envs")
    parser.add_argument("--json", type=Path, default=None, help="write the results (every test's outcome) here")
    opts = parser.parse_args()
    opts.workdir.mkdir(parents=True, exist_ok=True)
    venv, source, tiktoken = setup(opts.workdir)
    home = opts.home or opts.workdir / "hostel-home"
    stand_in = sqlite3_stand_in(opts.workdir, venv) if "vector_io" in (opts.suite or SUITES) else None
    where = Setup(venv, source, tiktoken, opts.workdir, home, stand_in)
    results = [run_suite(suite, where) for suite in opts.suite or SUITES]
    print(table(results))
    for r in results:
        if r.deselected:
            print(f"{r.suite}: deselected both ways: {r.deselected}")
        if r.note:
            print(f"{r.suite}: {r.note}")
        for name in r.differ:
            why = EXPECTED.get(r.suite, {}).get(name) or RACES.get(r.suite, {}).get(name) or "not expected"
            print(f"{r.suite}: {name}: {r.in_process.tests.get(name)} in process, {r.bridged.tests.get(name)} bridged"
                  f" ({why})")  # fmt: skip
    if opts.json:
        rows = [{**asdict(r), "differ": r.differ, "unexpected": r.unexpected} for r in results]
        opts.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(not r.unexpected for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
