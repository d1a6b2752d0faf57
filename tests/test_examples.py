"""Smoke-run every example the way its README says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import EXAMPLES, hostel_pids, wait_until
from tests.served import free_port


@contextmanager
def _process(args: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@contextmanager
def _hostel_run(config: Path, tmp: Path, **env: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / f"hostel-{port}.log"
    with _process([sys.executable, "-m", "hostel", "run", str(config), "--port", str(port)], log, **env) as proc:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout=300), log.read_text()
        yield url
    assert proc.returncode == 0, log.read_text()


@contextmanager
def _fake_ollama(tmp: Path) -> Iterator[str]:
    port = free_port()
    script = EXAMPLES / "custom_ollama" / "fake_ollama.py"
    with _process([sys.executable, str(script), "--port", str(port)], tmp / "fake.log"):
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _answers(f"{url}/api/tags"), timeout=30)
        yield url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_conflicting_pins_main_and_over_http(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "conflicting_pins" / "main.py")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "idna 2.10" in done.stdout and "xn--bcher-kva.example" in done.stdout
    with _hostel_run(EXAMPLES / "conflicting_pins" / "run.yaml", tmp_path) as url:
        assert httpx.post(f"{url}/v1/providers/old/versions", json={}).json()["idna"] == "2.10"
        assert httpx.post(f"{url}/v1/providers/new/versions", json={}).json()["idna"] != "2.10"


def test_custom_ollama_with_curl_style_calls_and_the_openai_client(tmp_path: Path, hostel_home: Path) -> None:
    example = EXAMPLES / "custom_ollama"
    with _fake_ollama(tmp_path) as ollama, _hostel_run(example / "run.yaml", tmp_path, OLLAMA_URL=ollama) as url:
        body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
        assert reply["choices"][0]["message"]["content"] == "You said: hi" and reply["model"] == "llama3.2:1b"
        assert httpx.post(f"{url}/v1/providers/ollama/health", json={}, timeout=60).json() == {"status": "OK"}
        client = subprocess.run(
            [sys.executable, str(example / "client.py")],
            env={**os.environ, "HOSTEL_URL": url}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        assert "chat: You said: Hello, hostel" in client.stdout and "stream: You said: one two three" in client.stdout
        assert "embeddings: [8, 8]" in client.stdout and "models: ['llama3', 'embed']" in client.stdout
        listed = httpx.get(f"{url}/v1/providers", timeout=60).json()["data"]
        assert {p["provider_id"]: p["health"] for p in listed}["ollama"] == {"status": "OK"}  # its own health()
    # With its Ollama down, the provider's worker still serves, and /v1/providers says what its health() says.
    with _hostel_run(example / "run.yaml", tmp_path, OLLAMA_URL=f"http://127.0.0.1:{free_port()}") as url:
        listed = httpx.get(f"{url}/v1/providers", timeout=60).json()["data"]
        health = {p["provider_id"]: p["health"] for p in listed}["ollama"]
        assert health["status"] == "Error" and "is unreachable" in health["message"], health
        assert httpx.get(f"{url}/v1/health", timeout=60).status_code == 200  # hostel's own: its workers serve
    assert wait_until(lambda: not hostel_pids(str(hostel_home)), timeout=10)


def test_vector_store_inserts_and_queries_through_deps(tmp_path: Path) -> None:
    with (
        _fake_ollama(tmp_path) as ollama,
        _hostel_run(EXAMPLES / "vector_store" / "run.yaml", tmp_path, OLLAMA_URL=ollama) as url,
    ):
        docs = [
            {"id": "1", "text": "cats purr and sleep"},
            {"id": "2", "text": "rockets fly to space"},
            {"id": "3", "text": "a cat sleeps all day"},
        ]
        inserted = httpx.post(f"{url}/v1/providers/store/insert_documents", json={"documents": docs}, timeout=60)
        assert inserted.json() == {"inserted": 3, "total": 3}
        hits = httpx.post(f"{url}/v1/providers/store/query", json={"query": "cats sleep", "k": 2}, timeout=60).json()
        assert {h["id"] for h in hits} == {"1", "3"}
        other = {"X-LlamaStack-Provider-Data": json.dumps({"namespace": "team-b"})}
        assert httpx.post(f"{url}/v1/providers/store/query", json={"query": "cats"}, headers=other).json() == []
        bad = {"X-LlamaStack-Provider-Data": json.dumps({"namespace": "no spaces!"})}
        assert httpx.post(f"{url}/v1/providers/store/query", json={"query": "x"}, headers=bad).status_code == 400
