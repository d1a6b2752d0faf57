"""The guardrails example: TrustyAI FMS and lightspeed's redaction shield from PyPI as shields in hostel's table,
behind the Safety API and /v1/moderations — served by `hostel run`, and by a real OGX 1.5 server that declares the
Safety API as an external one implemented by hostel and names its own /v1/moderations as its Responses provider's
moderation_endpoint — driven by the unmodified llama-stack-client 0.7.5 and openai clients (network: the package
index only)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from tests.conftest import (
    EXAMPLES,
    REPO,
    hostel_pids,
    hub_pids,
    ogx_server_venv,
    python_path,
    stop_server,
    wait_until,
    worker_pids,
)
from tests.served import Served, free_port

EXAMPLE = EXAMPLES / "guardrails"
PY312 = python_path("3.12")
pytestmark = pytest.mark.skipif(not PY312, reason="these providers, OGX and the clients need Python 3.12")
TIKTOKEN_CL100K = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # cl100k_base's name in tiktoken's cache

EXPECTED = [
    "shields: [('pii', 'fms'), ('redaction', 'redaction'), ('secrets', 'redaction')]",
    "secrets: secrets",
    "run_shield pii, clean: pass",
    "run_shield pii, e-mail: error - Content violation detected by shield pii",
    "moderations redaction, ssn: redaction flagged=True ['sensitive_data']",
    "moderations redaction, clean: redaction flagged=False -",
    "moderations pii, e-mail: pii flagged=True ['pii']",
    "moderations default, e-mail: pii flagged=True ['pii']",
    "unknown shield: 404",
    # The server was stopped and started again: the shield registered at run time is still there.
    "shields after a restart: [('pii', 'fms'), ('redaction', 'redaction'), ('secrets', 'redaction')]",
    "moderations secrets, ssn: secrets flagged=True ['sensitive_data']",
    "unregistered secrets: 404",
]


def _run(*args: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "main.py"), *args],
        capture_output=True, text=True, timeout=1500, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_llama_stack_client_and_openai_client_use_shields_served_by_hostel_run() -> None:
    assert _run() == EXPECTED


def _tiktoken_cache(workdir: Path) -> Path:
    """tiktoken's cl100k_base file, which OGX's vector_io loads at start and would download from a host this
    machine cannot reach: the litellm wheel on PyPI ships a copy."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "-d", str(workdir / "litellm"), "litellm"],
        check=True,
    )  # fmt: skip
    cache = workdir / "tiktoken"
    cache.mkdir()
    with zipfile.ZipFile(next((workdir / "litellm").glob("litellm-*.whl"))) as wheel:
        member = f"litellm/litellm_core_utils/tokenizers/{TIKTOKEN_CL100K}"
        (cache / TIKTOKEN_CL100K).write_bytes(wheel.read(member))
    return cache


@pytest.fixture(scope="module")
def ogx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`ogx` from a Python 3.12 venv with OGX 1.5, what the example's config runs in process, and this hostel; and
    the tiktoken cache it needs here."""
    workdir = tmp_path_factory.mktemp("ogx")
    return ogx_server_venv(workdir / "venv", EXAMPLE / "ogx" / "requirements.txt"), _tiktoken_cache(workdir)


def _environ(tiktoken: Path) -> dict[str, str]:
    """This test's environment (its HOSTEL_HOME) with the tiktoken cache."""
    return {**os.environ, "TIKTOKEN_CACHE_DIR": str(tiktoken)}


def test_an_ogx_server_serves_the_shields_and_its_responses_guardrails_use_them(
    ogx: tuple[Path, Path],
) -> None:
    """`ogx run` with the example's external_apis_dir: the same clients get the same answers from OGX, and a
    Responses call with guardrails is refused when hostel's shield flags it (and answered when it does not)."""
    ogx_bin, tiktoken = ogx
    assert _run("--ogx", str(ogx_bin), env=_environ(tiktoken)) == [*EXPECTED, *RESPONSES]


RESPONSES = [
    "responses 'my ssn is 123-45-6789': Content blocked by safety guardrails (flagged for: sensitive_data)",
    "responses 'hello': echo from Llama Stack 0.7.3: hello ",
]


def _example_main() -> Any:
    spec = importlib.util.spec_from_file_location("guardrails_main", EXAMPLE / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_ogx_servers_moderation_endpoint_can_be_hostel_run(
    ogx: tuple[Path, Path], tmp_path: Path, hostel_home: Path
) -> None:
    """OGX without the Safety API: its Responses provider's moderation_endpoint is a separate `hostel run`."""
    ogx_bin, tiktoken = ogx
    config = tmp_path / "hostel"
    shutil.copytree(EXAMPLE / "providers.d", config / "providers.d")
    shutil.copy(EXAMPLE / "run.yaml", config / "run.yaml")
    hostel = Served(config / "run.yaml", hostel_home)
    server = None
    try:
        raw = yaml.safe_load((EXAMPLE / "ogx" / "ogx.yaml").read_text())
        raw["apis"].remove("safety")
        del raw["external_apis_dir"], raw["providers"]["safety"]
        raw["providers"]["responses"][0]["config"]["moderation_endpoint"] = (
            f"{hostel.url}/v1/moderations?model=redaction"
        )
        (tmp_path / "ogx.yaml").write_text(yaml.safe_dump(raw))
        port = free_port()
        server_env = {**_environ(tiktoken), "PORT": str(port), "SQLITE_STORE_DIR": str(tmp_path),
                      "BRIDGEPROV_DIR": str(REPO / "tests" / "providers" / "bridgeprov")}  # fmt: skip
        with (tmp_path / "ogx.log").open("wb") as log:
            server = subprocess.Popen(
                [str(ogx_bin), "run", "ogx.yaml", "--insecure"], cwd=tmp_path, env=server_env, stdout=log, stderr=log
            )
        main = _example_main()
        url = f"http://127.0.0.1:{port}"
        main.wait_healthy(url, server, timeout=600)
        done = subprocess.run(
            [str(main.client_python()), str(EXAMPLE / "client.py"), url, "responses"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:] + (tmp_path / "ogx.log").read_text()[-3000:]
        # "sensitive_data" is the redaction provider's own category: hostel run answered OGX's moderation call
        # (OGX, failing closed, would refuse with "moderation service unavailable" otherwise).
        assert done.stdout.splitlines() == RESPONSES
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        hostel.stop()


SSN = "my ssn is 123-45-6789"


def _ogx_server(ogx_bin: Path, config: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(ogx_bin), "run", str(config), "--insecure", "--port", str(port)],
            cwd=config.parent, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _example_main().wait_healthy(url, server, timeout=600)
    return server, url


def _moderate_many(url: str, shield: str, count: int) -> list[bool]:
    """``count`` moderations at once, each on a connection of its own (spread over the server's processes)."""

    def one(_: int) -> bool:
        with httpx.Client(headers={"connection": "close"}, timeout=120) as client:
            reply = client.post(f"{url}/v1/moderations", json={"input": SSN, "model": shield})
        assert reply.status_code == 200, reply.text
        return bool(reply.json()["results"][0]["flagged"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(count)))


def test_a_multi_worker_ogx_server_keeps_one_shields_table_and_one_worker_per_provider(
    ogx: tuple[Path, Path], tmp_path: Path, hostel_home: Path
) -> None:
    """`ogx run` with `server.workers: 4`, the Safety API from a hostel run config (the redaction shield) and an
    echo provider bridged: the run config's providers and the bridged one each run once, in hubs the server's
    processes share; a shield registered through one process is there for the others (retrieved and used by
    requests spread over all of them); killing a server process (a hub's parent) harms no call; the server's stop
    leaves nothing."""
    ogx_bin, tiktoken = ogx
    shutil.copytree(EXAMPLE / "providers.d", tmp_path / "providers.d")
    run = yaml.safe_load((EXAMPLE / "run.yaml").read_text())
    del run["providers"]["safety"][0]  # FMS wants its detector service; the redaction shield needs nothing
    run["shields"] = [{"shield_id": "redaction", "provider_id": "redaction"}]
    del run["safety"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    raw = yaml.safe_load((EXAMPLE / "ogx" / "ogx.yaml").read_text())
    raw["apis"] = ["inference", "safety"]
    raw["external_apis_dir"] = str(EXAMPLE / "ogx" / "apis")
    raw["providers"] = {
        "safety": [{**raw["providers"]["safety"][0], "config": {"run_config": str(tmp_path / "run.yaml")}}],
        "inference": raw["providers"]["inference"],
    }
    raw["server"] = {"host": "127.0.0.1"}  # the port: --port
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(raw))
    raw["server"]["workers"] = 4
    (tmp_path / "four.yaml").write_text(yaml.safe_dump(raw))
    env = {**_environ(tiktoken), "SQLITE_STORE_DIR": str(tmp_path / "state"),
           "BRIDGEPROV_DIR": str(REPO / "tests" / "providers" / "bridgeprov")}  # fmt: skip
    log = tmp_path / "ogx.log"
    server, _ = _ogx_server(ogx_bin, tmp_path / "one.yaml", env, log)  # OGX's SQLite stores: made by one first
    stop_server(server)
    before = set(hub_pids())
    server, url = _ogx_server(ogx_bin, tmp_path / "four.yaml", env, log)
    try:
        assert wait_until(lambda: log.read_text(errors="replace").count("attached to the shared host") >= 8, 300)
        hubs = {pid: parent for pid, parent in hub_pids().items() if pid not in before}
        assert len(hubs) == 2  # the run config's providers, the bridged echo
        assert len(worker_pids(str(hostel_home))) == 2  # not one per server process
        registered = httpx.post(f"{url}/v1/shields", json={"shield_id": "late", "provider_id": "redaction"}, timeout=60)
        assert registered.status_code == 200, registered.text
        with ThreadPoolExecutor(max_workers=16) as pool:
            found = list(pool.map(lambda _: httpx.get(f"{url}/v1/shields/late", timeout=60).status_code, range(32)))
        assert found == [200] * 32
        assert _moderate_many(url, "late", 32) == [True] * 32
        parent = psutil.Process(next(iter(hubs.values())))
        parent.kill()  # a server process that started a hub
        parent.wait(timeout=10)
        assert _moderate_many(url, "late", 16) == [True] * 16
        assert set(hubs) <= set(hub_pids()) and len(worker_pids(str(hostel_home))) == 2
    finally:
        stop_server(server)
    assert wait_until(lambda: not (set(hub_pids()) - before), timeout=30)
    assert wait_until(lambda: not hostel_pids(str(hostel_home)), timeout=30)
    text = log.read_text(errors="replace")
    assert "hostel hub run.yaml: stopping:" in text and "hostel hub echo: stopping:" in text
