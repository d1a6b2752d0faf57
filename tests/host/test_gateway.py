"""`hostel run` as a user runs it: a real server process, real HTTP, the openai client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import hostel_pids, make_config, provider_spec, wait_until
from tests.served import Served, free_port


def _serve(tmp: Path, home: Path, **hostel: Any) -> Served:
    """``hostel run`` with two test providers ("infer", with a model, and "tools")."""
    config = make_config(
        tmp,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/testprov": provider_spec()},
        providers={
            "inference": [{"provider_id": "infer", "provider_type": "inline::testprov", "config": {"greeting": "hi"}}],
            "tool_runtime": [{"provider_id": "tools", "provider_type": "inline::testprov"}],
        },
        models=[{"model_id": "llama3", "provider_id": "infer", "provider_model_id": "llama3.2:1b"}],
        hostel={
            "restart": {"max_restarts": 5, "window_s": 60, "backoff_initial_s": 0.05, "backoff_max_s": 1},
            **hostel,
        },
    )
    return Served(config, home)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # Its own HOSTEL_HOME: its workers live across tests, and the per-test leak check watches the session home.
    running = _serve(tmp_path_factory.mktemp("gateway"), tmp_path_factory.mktemp("gateway-home"))
    yield running
    running.stop()


def post(server: Served, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=60, **kwargs)


def test_health_and_providers(server: Served) -> None:
    assert httpx.get(f"{server.url}/v1/health").json() == {"status": "OK"}
    rows = httpx.get(f"{server.url}/v1/providers").json()["data"]
    assert [r["provider_id"] for r in rows] == ["infer", "tools"]
    assert {r["state"] for r in rows} == {"ready"} and all(r["pid"] for r in rows)


def test_generic_call_and_non_ascii(server: Served) -> None:
    assert post(server, "/v1/providers/tools/greet", {"name": "Zoë"}).json() == "hello, Zoë"
    assert post(server, "/v1/providers/tools/inspect_item", {"item": {"name": "b", "size": 2}}).json()["double"] == 4


@pytest.mark.parametrize("size", [10, 300_000])  # inline, and beside the call in chunks
def test_bytes_a_provider_returns_are_the_response_body(server: Served, size: int) -> None:
    response = post(server, "/v1/providers/tools/raw_bytes", {"size": size})
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    assert response.content == bytes(i % 251 for i in range(size))


def test_stream_as_server_sent_events(server: Served) -> None:
    with httpx.stream("POST", f"{server.url}/v1/providers/tools/count", json={"n": 500}, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        items = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert items == list(range(500))


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/v1/providers/tools/greet", "{not json", 400, "BadRequest"),
        ("/v1/providers/tools/greet", "[1, 2]", 400, "BadRequest"),
        ("/v1/providers/tools/greet", '{"nom": "x"}', 400, "BadArgumentsError"),
        ("/v1/providers/tools/fail", '{"message": "m"}', 400, "ValueError"),
        ("/v1/providers/tools/fail_typed", '{"kind": "fast"}', 400, "hostel_testprov.UnsupportedModeError"),
        ("/v1/providers/tools/fail_typed", '{"kind": "quota"}', 429, "hostel_testprov.QuotaError"),
        ("/v1/providers/tools/deny", "{}", 403, "PermissionError"),
        ("/v1/providers/ghost/greet", "{}", 404, "RoutingError"),
        ("/v1/providers/tools/nope", "{}", 404, "MethodNotFoundError"),
        ("/v1/providers/tools/unimplemented", "{}", 501, "NotImplementedError"),
        ("/v1/providers/tools/explode", "{}", 500, "RuntimeError"),
        ("/v1/chat/completions", '{"model": "ghost", "messages": []}', 404, "RoutingError"),
        ("/v1/chat/completions", '{"messages": []}', 400, "BadRequest"),
        ("/v1/nowhere", "{}", 404, "NotFound"),
    ],
)
def test_error_mapping(server: Served, path: str, body: str, status: int, kind: str) -> None:
    response = httpx.post(f"{server.url}{path}", content=body, timeout=60, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and error["message"]
    if path.startswith("/v1/providers/"):
        assert error["provider_id"] == path.split("/")[3]


def test_timeout_is_504(server: Served) -> None:
    response = post(server, "/v1/providers/tools/sleep", {"seconds": 10}, headers={"X-Hostel-Timeout": "0.3"})
    assert response.status_code == 504 and response.json()["error"]["type"] == "CallTimeoutError"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "soon", "1e400"])
def test_a_timeout_header_must_be_finite_and_positive(server: Served, value: str) -> None:
    response = post(server, "/v1/providers/tools/greet", {"name": "x"}, headers={"X-Hostel-Timeout": value})
    assert response.status_code == 400 and "X-Hostel-Timeout" in response.json()["error"]["message"]


def test_a_huge_timeout_is_capped_not_refused(server: Served) -> None:
    response = post(server, "/v1/providers/tools/sleep", {"seconds": 0.1}, headers={"X-Hostel-Timeout": "1e300"})
    assert response.status_code == 200 and response.json() == 0.1


def test_arguments_named_like_hostel_parameters_reach_the_provider(server: Served) -> None:
    body = {"method": "m", "self": "s", "provider_id": "p", "timeout": 1}
    response = post(server, "/v1/providers/tools/keywords", body)
    assert response.status_code == 200 and response.json() == body


def test_metric_labels_stay_bounded_whatever_method_names_clients_send(server: Served) -> None:
    for i in range(40):
        assert post(server, f"/v1/providers/tools/made_up_{i}_{'x' * 200}", {}).status_code == 404
    text = httpx.get(f"{server.url}/metrics").text
    assert "made_up" not in text
    assert 'hostel_calls_total{method="<unknown>",provider_id="tools"}' in text


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: Served) -> None:
    too_big = 64 * 2**20 + 1
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/providers/tools/length HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % too_big
        )
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after its answer
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "max_message_mb" in answer and "connection: close" in answer.lower()

    def chunks() -> Iterator[bytes]:
        yield b'{"data": "'
        for _ in range(80):
            yield b"x" * 2**20

    response = httpx.post(
        f"{server.url}/v1/providers/tools/length",
        content=chunks(),
        timeout=60,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["error"]["type"] == "PayloadTooLargeError"


@pytest.mark.parametrize("header", ["X-OGX-Provider-Data", "X-LlamaStack-Provider-Data"])
def test_provider_data_header(server: Served, header: str) -> None:
    """OGX 1.x's header and Llama Stack's older one both carry provider data to the provider's validator."""
    headers = {header: json.dumps({"api_key": "secret"})}
    assert post(server, "/v1/providers/tools/provider_data", {}, headers=headers).json() == {"api_key": "secret"}
    bad = post(server, "/v1/providers/tools/provider_data", {}, headers={header: '{"x": 1}'})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "ProviderDataError"
    garbled = post(server, "/v1/providers/tools/provider_data", {}, headers={header: "{"})
    assert garbled.status_code == 400 and header in garbled.json()["error"]["message"]


def test_ogx_provider_data_header_wins_over_the_older_one(server: Served) -> None:
    headers = {
        "X-OGX-Provider-Data": json.dumps({"api_key": "new"}),
        "X-LlamaStack-Provider-Data": json.dumps({"api_key": "old"}),
    }
    assert post(server, "/v1/providers/tools/provider_data", {}, headers=headers).json() == {"api_key": "new"}


def test_openai_client_unchanged(server: Served) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    reply = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hey"}])
    assert reply.choices[0].message.content == "hi from llama3.2:1b: hey"
    chunks = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "a b"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == "hi from llama3.2:1b: a b"
    assert [m.id for m in client.models.list()] == ["llama3"]
    embedding = client.embeddings.create(model="llama3", input=["abc", "de"])
    assert [len(d.embedding) for d in embedding.data] == [3, 3] and embedding.data[0].embedding[0] == 3.0
    assert client.completions.create(model="llama3", prompt="abc").choices[0].text == "cba"


def test_crash_over_http_is_503_then_recovers(server: Served) -> None:
    response = post(server, "/v1/providers/tools/crash", {"code": 5})
    assert response.status_code == 503 and response.json()["error"]["type"] == "ProviderCrashedError"
    assert "exited with code 5" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"  # clients must not send the request that killed it again
    assert post(server, "/v1/providers/infer/greet", {"name": "other"}).json() == "hi, other"
    assert wait_until(lambda: post(server, "/v1/providers/tools/greet", {"name": "x"}).status_code == 200, timeout=30)
    rows = {r["provider_id"]: r for r in httpx.get(f"{server.url}/v1/providers").json()["data"]}
    assert rows["tools"]["restarts"] == 1 and rows["tools"]["last_exit"] == "exited with code 5"


def test_metrics_move_when_calls_happen(server: Served) -> None:
    def count() -> float:
        for line in httpx.get(f"{server.url}/metrics").text.splitlines():
            if line.startswith('hostel_calls_total{method="add",provider_id="tools"}'):
                return float(line.split()[-1])
        return 0.0

    before = count()
    for _ in range(3):
        assert post(server, "/v1/providers/tools/add", {"a": 1, "b": 2}).json() == 3
    assert count() == before + 3
    text = httpx.get(f"{server.url}/metrics").text
    assert 'hostel_provider_state{provider_id="tools",state="ready"} 1.0' in text
    assert "hostel_call_seconds_bucket" in text and "hostel_provider_restarts" in text


def test_client_disconnect_mid_stream_stops_the_generator(server: Served, tmp_path: Path) -> None:
    record = tmp_path / "record"
    body = {"n": 100_000, "record": str(record), "delay": 0.01}
    with httpx.stream("POST", f"{server.url}/v1/providers/tools/count_tracked", json=body, timeout=60) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: ")) == "data: 0"
    assert wait_until(lambda: record.exists() and record.read_text() == "closed", timeout=10)


def test_ps_shows_the_running_host(server: Served) -> None:
    done = server.cli("ps")
    assert done.returncode == 0 and "infer" in done.stdout and "ready" in done.stdout, done.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "hostel", "ps", "--port", str(free_port())], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1 and "no hostel answering" in missing.stderr
    # A second `hostel run` on the same port fails to listen, and leaves the first's admin token where it was.
    second = subprocess.run(
        [sys.executable, "-m", "hostel", "run", str(server.config), "--port", str(server.port)],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "HOSTEL_HOME": str(server.home)},
    )  # fmt: skip
    assert second.returncode != 0
    assert f":{server.port}" in second.stderr and "pick another port" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert server.cli("ps").returncode == 0
    # An address this machine does not have (TEST-NET-1: nothing is sent, bind refuses it) is named as such.
    elsewhere = subprocess.run(
        [sys.executable, "-m", "hostel", "run", str(server.config), "--host", "192.0.2.77", "--insecure",
         "--port", str(free_port())],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "HOSTEL_HOME": str(server.home)},
    )  # fmt: skip
    assert elsewhere.returncode != 0 and "cannot listen on 192.0.2.77" in elsewhere.stderr, elsewhere.stderr
    assert "another server" not in elsewhere.stderr and "Traceback" not in elsewhere.stderr


def test_a_provider_is_restarted_over_http_and_by_the_cli(server: Served) -> None:
    def pid() -> int:
        return int(post(server, "/v1/providers/tools/whoami", {}).json()["pid"])

    before = pid()
    # Without the admin token hostel run wrote for its user (any local process, a provider's worker): refused.
    for path in ("/v1/providers/tools/restart", "/v1/hostel/providers/tools/stop", "/v1/hostel/reload"):
        refused = post(server, path, {})
        assert refused.status_code == 403 and "X-Hostel-Admin" in refused.json()["error"]["message"]
    assert httpx.get(f"{server.url}/v1/hostel/status").status_code == 403
    assert pid() == before
    response = post(server, "/v1/providers/tools/restart", {}, headers=server.admin_headers())
    assert response.status_code == 200 and response.json()["state"] == "ready"
    assert response.json()["pid"] == pid() != before
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "restart", "tools", "--port", str(server.port)],
        capture_output=True, text=True, check=False, env={**os.environ, "HOSTEL_HOME": str(server.home)},
    )  # fmt: skip
    assert done.returncode == 0 and "tools: ready" in done.stdout, done.stderr
    unknown = server.cli("restart", "ghost")
    assert unknown.returncode == 1 and "no provider 'ghost'" in unknown.stderr


LLAMA_STACK_CLIENT_SCRIPT = """
import sys
from llama_stack_client import LlamaStackClient
client = LlamaStackClient(base_url=sys.argv[1])
print(client.inspect.health().status)
print([getattr(m, "id", None) or m.identifier for m in client.models.list()])
reply = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "yo"}])
print(reply.choices[0].message.content)
chunks = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "a b"}], stream=True)
print("".join(chunk.choices[0].delta.content or "" for chunk in chunks).strip())
print(sorted((p.api, p.provider_id, p.provider_type) for p in client.providers.list()))
info = client.providers.retrieve("tools")
print(info.provider_id, info.api, info.health)
print(client.inspect.version().version)
"""


def test_llama_stack_client_talks_to_hostel(server: Served, llama_stack_client_python: Path) -> None:
    done = subprocess.run(
        [str(llama_stack_client_python), "-c", LLAMA_STACK_CLIENT_SCRIPT, server.url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == ["OK", "['llama3']", "hi from llama3.2:1b: yo", "hi from llama3.2:1b: a b"]
    assert lines[4] == "[('inference', 'infer', 'inline::testprov'), ('tool_runtime', 'tools', 'inline::testprov')]"
    # The test provider has no health(): Llama Stack says so the same way.
    assert (
        lines[5]
        == "tools tool_runtime {'status': 'Not Implemented', 'message': 'Provider does not implement health check'}"
    )
    assert lines[6] == "0.1.0"


OGX_CLIENT_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")  # ogx-client's own models warn about their own serialisation
from ogx_client import OgxClient
from ogx_client.models.open_ai_chat_completion_request_with_extra_body import OpenAIChatCompletionRequestWithExtraBody
from ogx_client.models.open_ai_completion_request_with_extra_body import OpenAICompletionRequestWithExtraBody
from ogx_client.models.open_ai_embeddings_request_with_extra_body import OpenAIEmbeddingsRequestWithExtraBody
client = OgxClient(base_url=sys.argv[1], default_headers={"X-OGX-Provider-Data": '{"api_key": "k"}'})
print(client.inspect.health().status.value)
print([m.id for m in client.models.list().data])
chat = {"model": "llama3", "messages": [{"role": "user", "content": "yo"}]}
reply = client.chat.completions.create(OpenAIChatCompletionRequestWithExtraBody.from_dict(chat))
print(reply.choices[0].message.content)
chunks = client.chat.completions.create(OpenAIChatCompletionRequestWithExtraBody.from_dict({**chat, "stream": True}))
print("".join(chunk.choices[0].delta.content or "" for chunk in chunks).strip())
completion = {"model": "llama3", "prompt": "abc"}
print(client.completions.create(OpenAICompletionRequestWithExtraBody.from_dict(completion)).choices[0].text)
embeddings = {"model": "llama3", "input": ["abc", "de"]}
vectors = client.embeddings.create(OpenAIEmbeddingsRequestWithExtraBody.from_dict(embeddings)).data
print([len(d.embedding) for d in vectors])
print(sorted((p.api, p.provider_id, p.provider_type) for p in client.providers.list()))
info = client.providers.retrieve("tools")
print(info.provider_id, info.api, info.health)
"""


def test_ogx_client_talks_to_hostel(server: Served, ogx_client_python: Path) -> None:
    """OGX 1.x's own (OpenAPI-generated) client, unmodified, on the routes OGX still has; the eval, datasets,
    scoring and post-training routes are gone from OGX and from its client (llama-stack-client 0.7.5 covers them)."""
    done = subprocess.run(
        [str(ogx_client_python), "-c", OGX_CLIENT_SCRIPT, server.url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "OK",
        "['llama3']",
        "hi from llama3.2:1b: yo",
        "hi from llama3.2:1b: yo",
        "cba",
        "[3, 3]",
        "[('inference', 'infer', 'inline::testprov'), ('tool_runtime', 'tools', 'inline::testprov')]",
        "tools tool_runtime {'status': 'Not Implemented', 'message': 'Provider does not implement health check'}",
    ]


def test_sigterm_stops_cleanly_with_no_worker_left(server: Served) -> None:
    pids = [r["pid"] for r in httpx.get(f"{server.url}/v1/providers").json()["data"]]
    assert server.stop() == 0
    assert wait_until(lambda: not hostel_pids(str(server.home)), timeout=10)
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert "stopped provider" in server.log.read_text()


def test_a_second_signal_forces_the_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = _serve(tmp_path, home, stop_grace_s=30)
    in_flight = threading.Thread(
        target=lambda: httpx.post(f"{server.url}/v1/providers/tools/sleep", json={"seconds": 60}, timeout=90),
        daemon=True,
    )
    in_flight.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.proc.poll() is None  # graceful: waiting for the in-flight request
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=20)
    assert time.monotonic() - started < 10
    assert wait_until(lambda: not hostel_pids(str(home)), timeout=10)
