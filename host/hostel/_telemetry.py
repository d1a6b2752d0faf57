"""OpenTelemetry in the host (docs/observability.md): spans for calls, trace context onto the wire and back.

Optional: without the ``telemetry`` extra installed, or with tracing off, every function here returns at
once. When on, the host uses the global tracer provider if one from the OpenTelemetry SDK is already set (the
host runs under ``opentelemetry-instrument``), else sets one up with an OTLP/HTTP exporter. Each call gets a
client span (``call <provider>.<method>``); the context goes to the worker in ``CallRequest.trace_context``
and comes back from a worker's ``deps`` calls in ``HostCallRequest.trace_context``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from hostel_sdk._client import StreamWrapper

logger = logging.getLogger(__name__)


class _State:
    tracer: Any = None  # set once tracing is on
    meter_instruments: Any = None


_state = _State()


class TelemetryUnavailableError(RuntimeError):
    """Tracing was asked for, but OpenTelemetry is not installed in the host's environment."""


def configure(*, endpoint: str | None, headers: Mapping[str, str], service_name: str) -> None:
    """Turn tracing on. ``TelemetryUnavailableError`` if the OpenTelemetry SDK is not installed."""
    if _state.tracer is not None:
        return
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as exc:
        raise TelemetryUnavailableError(
            f"tracing is on (hostel.telemetry, or an OTEL_EXPORTER_OTLP_ENDPOINT variable) but OpenTelemetry is "
            f"not installed ({exc}): pip install 'hostel[telemetry]', or turn it off with hostel.telemetry.enabled: "
            "false"
        ) from None
    from hostel import __version__

    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # not already set up by the user
        trace.set_tracer_provider(_tracer_provider(endpoint, headers, service_name))
        metrics.set_meter_provider(_meter_provider(endpoint, headers, service_name))
    _state.tracer = trace.get_tracer("hostel", __version__)
    meter = metrics.get_meter("hostel", __version__)
    _state.meter_instruments = (
        meter.create_counter("hostel.calls", description="Calls forwarded to providers"),
        meter.create_histogram("hostel.call.duration", unit="s", description="Call duration (streams: whole)"),
    )


def _resource(service_name: str) -> Any:
    from opentelemetry.sdk.resources import Resource

    from hostel import __version__

    return Resource.create({"service.name": service_name, "hostel.version": __version__, "process.pid": os.getpid()})


def _endpoint(endpoint: str | None, signal: str) -> dict[str, Any]:
    return {"endpoint": f"{endpoint.rstrip('/')}/v1/{signal}"} if endpoint else {}


def _tracer_provider(endpoint: str | None, headers: Mapping[str, str], service_name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=_resource(service_name))
    exporter = OTLPSpanExporter(**_endpoint(endpoint, "traces"), headers=dict(headers) or None)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _meter_provider(endpoint: str | None, headers: Mapping[str, str], service_name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = OTLPMetricExporter(**_endpoint(endpoint, "metrics"), headers=dict(headers) or None)
    return MeterProvider(resource=_resource(service_name), metric_readers=[PeriodicExportingMetricReader(exporter)])


def shutdown() -> None:
    """Export what is buffered (the host stops)."""
    if _state.tracer is None:
        return
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def on() -> bool:
    """Whether the host traces."""
    return _state.tracer is not None


def inject() -> dict[str, str]:
    """The current trace context as W3C headers (``{}`` when not tracing)."""
    if _state.tracer is None:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def extracted(carrier: Mapping[str, str]) -> Iterator[None]:
    """Run the code inside in the context the headers in ``carrier`` carry (a worker's, for its deps call)."""
    if _state.tracer is None or not carrier:
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


class CallSpan:
    """The client span of one call through the host; ended with its outcome (a stream: when it ends)."""

    __slots__ = ("_attributes", "_started", "_token", "span")

    def __init__(self, span: Any, token: Any, attributes: dict[str, Any], started: float) -> None:
        self.span = span
        self._token = token
        self._attributes = attributes
        self._started = started

    def leave(self) -> None:
        """Stop being the current span (the call returned to its caller; a stream may still run)."""
        from opentelemetry import context

        if self._token is not None:
            context.detach(self._token)
            self._token = None

    def end(self, error: BaseException | None = None) -> None:
        """End the span, with ``error`` recorded and the status set to error if there was one; a worker's crash
        adds an event with its exit and, when hostel killed it, why (a hung worker's stacks)."""
        import time

        from opentelemetry.trace import Status, StatusCode

        from hostel.errors import ProviderCrashedError

        if isinstance(error, ProviderCrashedError):
            exit_code, sig = error.exit_code, error.signal
            self.span.add_event(
                "hostel.worker.exit",
                {"hostel.worker.pid": error.pid or 0, "hostel.worker.exit_code": -1 if exit_code is None else exit_code,
                 "hostel.worker.signal": sig or 0, "hostel.worker.reason": error.reason,
                 "hostel.worker.stderr_tail": error.stderr_tail},
            )  # fmt: skip
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        result = "ok" if error is None else type(error).__name__
        self.span.set_attribute("hostel.outcome", result)
        self.span.end()
        calls, duration = _state.meter_instruments
        outcome = {**self._attributes, "hostel.outcome": result}
        calls.add(1, outcome)
        duration.record(time.perf_counter() - self._started, outcome)


def annotate(name: str, value: Any) -> None:
    """Set an attribute on the current span (the call's, in the host), when tracing."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(name, value)


def start_call(provider_id: str, method: str, api: str) -> CallSpan | None:
    """A client span for a call, made current; ``None`` when not tracing."""
    if _state.tracer is None:
        return None
    import time

    from opentelemetry import context, trace

    # `provider` is the attribute Llama Stack's routers put on their spans and metrics.
    attributes = {"rpc.system": "hostel", "rpc.method": method, "provider": provider_id, "hostel.api": api}
    span = _state.tracer.start_span(f"call {provider_id}.{method}", kind=trace.SpanKind.CLIENT, attributes=attributes)
    token = context.attach(trace.set_span_in_context(span))
    return CallSpan(span, token, {"provider": provider_id}, time.perf_counter())  # method names are unbounded


class TracedStream(StreamWrapper):
    """A stream whose call span ends when it ends (its error recorded), is closed, or is dropped."""

    def __init__(self, stream: Any, span: CallSpan) -> None:
        self._stream = stream
        self._span: CallSpan | None = span

    def __aiter__(self) -> TracedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as exc:
            self._end(exc)
            raise

    def _end(self, error: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is not None:
            span.end(error)

    async def aclose(self) -> None:
        """Stop the stream (the provider's generator is cancelled)."""
        try:
            await self._stream.aclose()
        finally:
            self._end(None)

    async def __aenter__(self) -> TracedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        self._end(None)
