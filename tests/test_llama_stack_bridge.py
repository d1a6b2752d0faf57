"""A real `llama stack run` (Llama Stack 0.7.3, installed into a venv of its own with hostel) serving two
providers bridged through hostel, one written for and pinned to Llama Stack 0.2.22, reached with an
unmodified llama-stack-client (network: the package index only)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bridge_servers import EXAMPLE, Server, example_venv, needs_python312, run_python, running
from tests.conftest import REPO, hostel_pids, wait_until, worker_pids

pytestmark = needs_python312


@pytest.fixture(scope="module")
def server_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_venv(tmp_path_factory, "requirements.txt")


@pytest.fixture(scope="module")
def server(server_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running([str(server_venv / "bin" / "llama"), "stack", "run"], tmp_path_factory.mktemp("bridge")) as up:
        yield up


def _client(server_venv: Path, server: Server, *args: str) -> list[str]:
    return run_python(server_venv, str(EXAMPLE / "client.py"), server.url, *args).stdout.splitlines()


def test_calls_and_streams_reach_providers_on_their_own_llama_stack(server_venv: Path, server: Server) -> None:
    lines = _client(server_venv, server)
    assert lines == [
        "health: OK",
        "models: ['echo-new/new', 'echo-old/old']",
        "echo-old/old: old echo from Llama Stack 0.2.22: hello",
        "echo-old/old stream: old echo from Llama Stack 0.2.22: one two three",
        "echo-new/new: new echo from Llama Stack 0.7.3: hello",
        "echo-new/new stream: new echo from Llama Stack 0.7.3: one two three",
    ]
    log = server.log.read_text(errors="replace")
    assert "hostel: provider echo-old ready" in log and "hostel: provider echo-new ready" in log


def test_a_crash_is_a_clean_503_and_the_restarted_worker_serves_the_next_call(
    server_venv: Path, server: Server
) -> None:
    before = set(worker_pids(str(server.home)))
    lines = _client(server_venv, server, "--crash")
    crash = next(line for line in lines if line.startswith("crash:"))
    assert crash.startswith("crash: HTTP 503:") and "exited with code 7 during the call" in crash
    assert "meanwhile echo-new/new: new echo from Llama Stack 0.7.3: still here?" in lines
    assert lines[-1] == "after the restart echo-old/old: old echo from Llama Stack 0.2.22: back?"
    assert server.proc.poll() is None
    after = set(worker_pids(str(server.home)))
    assert len(after) == 2 and len(after - before) == 1  # echo-old's worker replaced, echo-new's untouched
    log = server.log.read_text(errors="replace")
    # llama-stack-client retries a 5xx twice by default: the request crashed the worker once, and the server logged
    # hostel's paragraph (exit and stderr tail), not a traceback.
    assert log.count("exited with code 7; restarting") == 1
    assert "exited with code 7 during the call" in log and "Exception in ASGI application" not in log


def test_stopping_the_server_stops_every_worker(server: Server) -> None:
    pids = worker_pids(str(server.home))
    assert len(pids) == 2
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=60)
    assert wait_until(lambda: not hostel_pids(str(server.home)), timeout=15)


def test_a_provider_that_cannot_start_is_named_with_its_stage(server_venv: Path, tmp_path: Path) -> None:
    """Through the bridge's factory as the server calls it: required (the default) fails the start;
    ``required: false`` leaves a provider answering 503 and reporting itself unhealthy."""
    script = tmp_path / "start.py"
    script.write_text(
        "import asyncio, sys\n"
        "from hostel.bridge import get_adapter_impl\n"
        "from hostel.bridge.config import InferenceBridgeConfig\n"
        "async def main():\n"
        "    base = dict(provider_type='remote::echo', provider_id='bad', module='hostel_bridgeprov',\n"
        f"                pip_packages=[{str(REPO / 'tests' / 'providers' / 'bridgeprov')!r}, 'llama-stack==0.2.22'],\n"
        "                python='3.12', config={'prefix': {'not': 'a string'}})\n"
        "    try:\n"
        "        await get_adapter_impl(InferenceBridgeConfig(**base), {})\n"
        "    except Exception as exc:\n"
        "        print('refused:', type(exc).__name__, exc.stage, exc.provider_id)\n"
        "    impl = await get_adapter_impl(InferenceBridgeConfig(**base, required=False), {})\n"
        "    print('health:', (await impl.health())['status'])\n"
        "    try:\n"
        "        await impl.openai_chat_completion({'model': 'm', 'messages': []})\n"
        "    except Exception as exc:\n"
        "        print('call:', type(exc).__name__, exc.status_code)\n"
        "    await impl.shutdown()\n"
        "asyncio.run(main())\n"
    )
    done = run_python(server_venv, str(script), env={"HOSTEL_HOME": str(tmp_path / "home")})
    assert done.stdout.splitlines() == [
        "refused: ProviderStartError config bad",
        "health: Error",
        "call: ProviderUnavailableError 503",
    ]
    assert "provider bad (remote::echo) did not start" in done.stderr and "prefix" in done.stderr
    assert not hostel_pids(str(tmp_path / "home"))


def test_one_trace_across_the_llama_stack_server_and_a_bridged_worker(
    server_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``opentelemetry-instrument llama stack run``, as Llama Stack's docs run it: the server's FastAPI span,
    hostel's call span and the worker's span are one trace."""
    import secrets

    import uv

    from tests.otlp import Receiver

    python = str(server_venv / "bin" / "python")
    otel = ["opentelemetry-distro", "opentelemetry-exporter-otlp-proto-http", "opentelemetry-instrumentation-fastapi",
            "opentelemetry-instrumentation-asgi"]  # fmt: skip
    subprocess.run([uv.find_uv_bin(), "pip", "install", "--quiet", "--python", python, *otel], check=True)
    receiver = Receiver()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "llama-stack", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "50",
    }  # fmt: skip
    command = [
        str(server_venv / "bin" / "opentelemetry-instrument"),
        str(server_venv / "bin" / "llama"),
        "stack",
        "run",
    ]
    try:
        with running(command, tmp_path_factory.mktemp("traced"), env) as traced:
            trace_id = secrets.token_hex(16)
            headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            body = {"model": "echo-new/new", "messages": [{"role": "user", "content": "traced"}]}
            response = httpx.post(f"{traced.url}/v1/chat/completions", json=body, headers=headers, timeout=120)
            assert response.status_code == 200, response.text

            def chain() -> list[tuple[str, str]]:  # the worker's span, then its ancestors that have arrived
                spans = {s.span_id: s for s in receiver.trace(trace_id)}
                span = next((s for s in spans.values() if s.name == "serve echo-new.openai_chat_completion"), None)
                found = []
                while span is not None:
                    found.append((span.name, span.service))
                    span = spans.get(span.parent_id)
                return found

            def arrived() -> bool:  # spans are exported in batches, the server's own last: wait for the whole chain
                return any(service == "llama-stack" and "chat/completions" in name for name, service in chain())

            assert wait_until(arrived, timeout=60), (chain(), [(s.name, s.service) for s in receiver.trace(trace_id)])
            found = chain()
            assert found[0] == ("serve echo-new.openai_chat_completion", "hostel-provider-echo-new")
            assert found[1] == ("call echo-new.openai_chat_completion", "llama-stack")  # hostel, in the server
    finally:
        receiver.close()
