"""Request bodies bounded across connections, as a client that holds them open would try it, over real HTTP to
``hostel run``: the host-wide budget, the per-client cap, the stalled body, the client that goes away."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import make_config, provider_spec, wait_until
from tests.served import Served, free_port

MIB = 2**20
PATH = "/v1/providers/tools/length"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("bodies")
    config = make_config(
        tmp,
        specs={"inline/tool_runtime/testprov": provider_spec()},
        providers={"tool_runtime": [{"provider_id": "tools", "provider_type": "inline::testprov"}]},
        server={"port": free_port(), "max_request_bodies_mb": 8, "max_requests_per_client": 3, "body_timeout_s": 2},
    )
    running = Served(config, tmp_path_factory.mktemp("bodies-home"), env={"HOSTEL_LOG": "hostel.gateway.bodies=debug"})
    yield running
    running.stop()


def _begin(server: Served, length: int, sent: int) -> socket.socket:
    """A request for ``length`` bytes of JSON body, of which ``sent`` are sent now (the rest is held back)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + _body(length)[:sent])
    return sock


def _body(length: int) -> bytes:
    return b'{"data": "' + b"x" * (length - 12) + b'"}'


def _answer(sock: socket.socket) -> str:
    sock.settimeout(30)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    return answer.decode(errors="replace")


def _held(server: Served, expected: float) -> bool:
    """Whether /metrics says ``expected`` MiB of request bodies are held."""
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("hostel_request_body_bytes_held "):
            return float(line.split()[1]) == expected * MIB
    raise AssertionError("no hostel_request_body_bytes_held in /metrics")


def test_bodies_held_across_connections_are_bounded_and_the_holder_finishes(server: Served) -> None:
    first = _begin(server, 6 * MIB, 5 * MIB)  # 5 MiB held by a client that has not finished sending
    try:
        assert wait_until(lambda: _held(server, 5), 30)
        second = _begin(server, 4 * MIB, 0)  # would pass the 8 MiB budget: refused before a byte is read
        answer = _answer(second)
        assert answer.startswith("HTTP/1.1 503") and "server.max_request_bodies_mb" in answer
        assert "retry-after: 1" in answer.lower() and "connection: close" in answer.lower()
        chunked = httpx.post(f"{server.url}{PATH}", content=iter([_body(4 * MIB)]), timeout=60,
                             headers={"Content-Type": "application/json"})  # fmt: skip
        assert chunked.status_code == 503 and chunked.json()["error"]["type"] == "ProviderBusyError"
        first.sendall(_body(6 * MIB)[5 * MIB :])
        assert _answer(first).startswith("HTTP/1.1 200")
    finally:
        first.close()
    assert wait_until(lambda: _held(server, 0), 30)
    assert httpx.post(f"{server.url}{PATH}", json={"data": "x" * (4 * MIB)}, timeout=60).json() == 4 * MIB


def test_one_client_has_a_bounded_number_of_requests_in_flight(server: Served) -> None:
    held = [_begin(server, 100, 10) for _ in range(3)]
    try:
        # Once the server holds the three, a fourth whole request from the same address is refused.
        answers: list[str] = []
        assert wait_until(lambda: answers.append(_answer(_begin(server, 100, 100))) or "503" in answers[-1], 30)
        assert "server.max_requests_per_client" in answers[-1]
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: _answer(_begin(server, 100, 100)).startswith("HTTP/1.1 200"), 30)


def test_a_stalled_body_is_answered_408_and_a_client_gone_mid_body_is_no_error(server: Served) -> None:
    started = time.monotonic()
    answer = _answer(_begin(server, 1000, 100))
    assert answer.startswith("HTTP/1.1 408") and "server.body_timeout_s" in answer
    assert time.monotonic() - started < 25
    gone = _begin(server, 1000, 100)
    gone.close()
    assert wait_until(lambda: "the client went away" in server.log.read_text(), 30)
    log = server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
