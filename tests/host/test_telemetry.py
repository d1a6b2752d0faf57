"""One trace across the process boundary, as a user sees it: ``hostel run`` exporting to an OTLP receiver
(the real OpenTelemetry SDK and OTLP/HTTP on both sides), a request carrying a ``traceparent``."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, make_config, wait_until
from tests.otlp import Receiver, Span
from tests.served import Served

OTELPROV = REPO / "tests" / "providers" / "otelprov"
SPEC = {"module": "hostel_otelprov", "pip_packages": [str(OTELPROV)]}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("telemetry")
    config = make_config(
        tmp,
        specs={
            "inline/inference/otelprov": SPEC,
            "inline/tool_runtime/otelprov": {**SPEC, "api_dependencies": ["inference"]},
        },
        providers={
            "inference": [
                {"provider_id": "infer", "provider_type": "inline::otelprov", "limits": {"max_concurrent_calls": 1}}
            ],
            "tool_runtime": [{"provider_id": "tools", "provider_type": "inline::otelprov"}],
        },
        hostel={
            "restart": {"backoff_initial_s": 0.05},
            "probe_interval_s": 0.2,
            "probe_timeout_s": 0.2,
            "probe_failures": 2,
        },
    )
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms instead of 5 s
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_SERVICE_NAME": "stack-gateway",  # names the host's service, as the convention says
    }
    running = Served(config, tmp_path_factory.mktemp("telemetry-home"), env=env)
    yield running
    running.stop()


def _traceparent(sampled: bool = True) -> tuple[str, str, dict[str, str]]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    header = f"00-{trace_id}-{parent_id}-{'01' if sampled else '00'}"
    return trace_id, parent_id, {"traceparent": header, "baggage": "tenant=acme"}


def _spans(receiver: Receiver, trace_id: str, names: set[str]) -> dict[str, Span]:
    assert wait_until(lambda: names <= {s.name for s in receiver.trace(trace_id)}, timeout=20), (
        f"expected {names}, got {[s.name for s in receiver.trace(trace_id)]}"
    )
    return {s.name: s for s in receiver.trace(trace_id)}


def test_one_trace_from_the_callers_span_to_the_providers_own(server: Served, receiver: Receiver) -> None:
    trace_id, caller, headers = _traceparent()
    answer = server.post("/v1/providers/tools/work", {"text": "hi"}, headers=headers).json()
    assert answer["trace_id"] == trace_id and answer["include_usage"] is True  # Llama Stack's check sees a span
    assert answer["tenant"] == "acme"  # baggage crossed too
    names = {"POST /v1/providers/tools/work", "call tools.work", "serve tools.work", "provider.work"}
    spans = _spans(receiver, trace_id, names)
    http = spans["POST /v1/providers/tools/work"]  # the gateway's server span, a child of the caller's
    assert http.kind == 2 and http.service == "stack-gateway" and http.parent_id == caller
    assert spans["call tools.work"].parent_id == http.span_id
    assert spans["serve tools.work"].parent_id == spans["call tools.work"].span_id
    assert spans["provider.work"].parent_id == spans["serve tools.work"].span_id
    worker = spans["serve tools.work"]
    assert worker.service == "hostel-provider-tools" and worker.resource["hostel.provider.id"] == "tools"
    assert worker.resource["hostel.provider.type"] == "inline::otelprov" and worker.resource["hostel.env.key"]
    assert worker.resource["hostel.launcher"] == "process" and worker.resource["hostel.version"]
    call = spans["call tools.work"].attributes
    assert call["provider"] == "tools" and call["rpc.method"] == "work" and call["hostel.api"] == "tool_runtime"
    assert call["hostel.outcome"] == "ok" and "hostel.stream" not in call and "hostel.queue.wait_s" not in call


def test_a_call_that_waited_in_the_queue_says_how_long(server: Served, receiver: Receiver) -> None:
    holder = threading.Thread(target=server.post, args=("/v1/providers/infer/wait", {"seconds": 1.0}))
    holder.start()  # infer runs one call at a time (limits.max_concurrent_calls: 1)
    time.sleep(0.3)
    trace_id, _, headers = _traceparent()
    assert server.post("/v1/providers/infer/work", {"text": "q"}, headers=headers).status_code == 200
    holder.join()
    waited = _spans(receiver, trace_id, {"call infer.work"})["call infer.work"].attributes["hostel.queue.wait_s"]
    assert 0.2 < waited < 5


def test_a_deps_call_is_a_child_of_the_provider_that_made_it(server: Served, receiver: Receiver) -> None:
    trace_id, _, headers = _traceparent()
    answer = server.post("/v1/providers/tools/chain", {"text": "x"}, headers=headers).json()
    assert answer["trace_id"] == trace_id
    names = {
        "call tools.chain",
        "serve tools.chain",
        "provider.chain",
        "call infer.work",
        "serve infer.work",
        "provider.work",
    }
    spans = _spans(receiver, trace_id, names)
    assert spans["call infer.work"].parent_id == spans["provider.chain"].span_id  # back through the host
    assert spans["serve infer.work"].parent_id == spans["call infer.work"].span_id
    assert spans["serve infer.work"].service == "hostel-provider-infer"


def test_a_stream_is_one_span_that_ends_with_it(server: Served, receiver: Receiver) -> None:
    trace_id, _, headers = _traceparent()
    with httpx.stream(
        "POST", f"{server.url}/v1/providers/tools/count", json={"n": 3}, headers=headers, timeout=30
    ) as r:
        items = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert items == [0, 1, 2]
    assert wait_until(lambda: sum(s.name == "provider.item" for s in receiver.trace(trace_id)) == 3, timeout=20)
    spans = _spans(receiver, trace_id, {"call tools.count", "serve tools.count"})
    assert spans["call tools.count"].attributes["hostel.stream"] is True
    for item in (s for s in receiver.trace(trace_id) if s.name == "provider.item"):
        assert item.parent_id == spans["serve tools.count"].span_id


def test_an_unsampled_caller_makes_nothing_record(server: Served, receiver: Receiver) -> None:
    trace_id, _, headers = _traceparent(sampled=False)
    answer = server.post("/v1/providers/tools/work", {"text": "hi"}, headers=headers).json()
    assert answer["include_usage"] is False and answer["trace_id"] == trace_id
    time.sleep(0.5)
    assert receiver.trace(trace_id) == []


def test_a_crash_mid_call_is_an_error_with_the_exit_on_the_call_span(server: Served, receiver: Receiver) -> None:
    trace_id, _, headers = _traceparent()
    response = server.post("/v1/providers/tools/crash", headers=headers)
    assert response.status_code == 503
    spans = _spans(receiver, trace_id, {"call tools.crash"})
    call = spans["call tools.crash"]
    assert call.status == 2 and call.events["hostel.worker.exit"]["hostel.worker.exit_code"] == 3
    assert call.attributes["hostel.outcome"] == "ProviderCrashedError"
    assert "exception" in call.events
    assert wait_until(lambda: server.get("/v1/health").status_code == 200, timeout=30)


def test_metrics_go_out_through_opentelemetry_too(server: Served, receiver: Receiver) -> None:
    server.post("/v1/providers/tools/work", {"text": "m"})
    assert wait_until(lambda: {"hostel.calls", "hostel.call.duration"} <= receiver.metrics, timeout=20)
    assert "hostel_calls_total" in server.get("/metrics").text  # and still through Prometheus


def test_no_telemetry_means_no_opentelemetry_in_the_venv(tmp_path: Path) -> None:
    from hostel.config.plan import load_plan

    config = make_config(tmp_path)
    assert not load_plan(config, environ={}).telemetry
    traced = load_plan(config, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert traced.telemetry and traced.providers[0].worker.telemetry == {"instrument": False}
    assert dict(traced.providers[0].worker.env)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:1"
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    assert not load_plan(config, environ=off).telemetry


def test_a_hung_worker_explains_itself_on_the_call_it_failed(server: Served, receiver: Receiver) -> None:
    trace_id, _, headers = _traceparent()
    response = server.post("/v1/providers/tools/block", {"seconds": 30}, headers=headers)
    assert response.status_code == 503
    exit_event = _spans(receiver, trace_id, {"call tools.block"})["call tools.block"].events["hostel.worker.exit"]
    assert "liveness probes" in exit_event["hostel.worker.reason"] and "in block" in exit_event["hostel.worker.reason"]
    assert wait_until(lambda: server.get("/v1/health").status_code == 200, timeout=30)


def test_instrumented_providers_carry_the_trace_to_their_upstream(
    tmp_path: Path, receiver: Receiver, hostel_home: Path
) -> None:
    """``telemetry.instrument``: the instrumentations for the libraries in the provider's venv (httpx here) are
    installed and loaded, so its upstream call is a span of the trace and sends the trace on."""
    seen: list[str] = []

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("traceparent", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    config = make_config(
        tmp_path,
        specs={"inline/inference/otelprov": SPEC},
        providers={"inference": [{"provider_id": "infer", "provider_type": "inline::otelprov"}]},
        hostel={"telemetry": {"endpoint": receiver.endpoint, "instrument": True}},
    )
    running = Served(config, hostel_home, env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        trace_id, _, headers = _traceparent()
        url = f"http://127.0.0.1:{upstream.server_address[1]}/v1/models"
        assert running.post("/v1/providers/infer/fetch", {"url": url}, headers=headers).json() == 204
        assert len(seen) == 1 and seen[0].split("-")[1] == trace_id  # the upstream got the trace
        assert wait_until(lambda: any(s.kind == 3 and s.service == "hostel-provider-infer"
                                      for s in receiver.trace(trace_id)), timeout=20)  # fmt: skip
        serve = _spans(receiver, trace_id, {"serve infer.fetch"})["serve infer.fetch"]
        client = next(s for s in receiver.trace(trace_id) if s.kind == 3 and s.service == "hostel-provider-infer")
        assert client.parent_id == serve.span_id
    finally:
        assert running.stop() == 0
        upstream.shutdown()
