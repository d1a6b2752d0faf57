"""OpenTelemetry inside a worker, when the host traces (docs/observability.md).

The host sends ``StartRequest.telemetry`` only when it traces; the worker then sets up the OpenTelemetry SDK
(installed in the provider's venv for that purpose) with the resource the host named and an OTLP/HTTP
exporter configured, as everywhere, by the ``OTEL_EXPORTER_OTLP_*`` variables the host passed on. Each call
gets a server span whose parent is the caller's span (``CallRequest.trace_context``), made current around the
provider's method, so the provider's own spans are its children and ``trace.get_current_span()
.is_recording()`` is true when the caller's span is sampled (Llama Stack's OpenAI adapters ask for streaming
token usage only then). Calls the provider makes through its ``deps`` carry the context back to the host.

When the host does not trace, every function here returns at once: no OpenTelemetry import, no cost.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Iterator, Mapping
from typing import Any

logger = logging.getLogger(__name__)


class _State:
    """What configure() set up: a tracer once tracing is on, the SDK's provider, the provider id."""

    tracer: Any = None
    provider: Any = None
    provider_id = ""


_state = _State()


def configure(settings: Mapping[str, Any] | None) -> bool:
    """Turn tracing on as the host asks: ``settings`` holds ``resource`` (attributes) and ``instrument`` (load
    the OpenTelemetry instrumentors installed in this venv). Whether tracing is on; a venv without the
    OpenTelemetry SDK leaves it off, with a warning."""
    if not settings:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        logger.warning("the host traces, but this venv lacks the OpenTelemetry SDK (%s): no spans from here", exc)
        return False
    resource = dict(settings.get("resource") or {})
    _state.provider_id = str(resource.get("hostel.provider.id", ""))
    _state.provider = TracerProvider(resource=Resource.create(resource))
    _state.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_state.provider)
    if settings.get("instrument"):
        instrument()
    from hostel_sdk import __version__

    _state.tracer = trace.get_tracer("hostel_sdk", __version__)
    return True


def instrument() -> list[str]:
    """Load every OpenTelemetry instrumentor installed in this venv whose library is installed too (what
    ``opentelemetry-instrument`` does); the names loaded."""
    loaded: list[str] = []
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    except ImportError:
        logger.warning("telemetry.instrument is on, but opentelemetry-instrumentation is not installed here")
        return loaded
    for entry in importlib.metadata.entry_points(group="opentelemetry_instrumentor"):
        try:
            if entry.dist is not None and get_dist_dependency_conflicts(entry.dist) is not None:
                continue  # its library is absent or of a version it does not support
            entry.load()().instrument()
            loaded.append(entry.name)
        except Exception:  # one broken instrumentor must not stop the worker
            logger.warning("could not load the OpenTelemetry instrumentor %s", entry.name, exc_info=True)
    logger.info("OpenTelemetry instrumentors loaded: %s", ", ".join(loaded) or "none")
    return loaded


def shutdown() -> None:
    """Export what is still buffered (the worker is exiting)."""
    if _state.provider is not None:
        _state.provider.shutdown()


class CallSpan:
    """The server span of one call and the context it runs in (the caller's, with this span current)."""

    __slots__ = ("context", "span")

    def __init__(self, span: Any, context: Any) -> None:
        self.span = span
        self.context = context

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make the span (and the caller's baggage) current for the code inside."""
        from opentelemetry import context

        token = context.attach(self.context)
        try:
            yield
        finally:
            context.detach(token)

    def end(self, error: BaseException | None = None) -> None:
        """End the span, with ``error`` recorded and the status set to error if there was one."""
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.span.end()


def start_call(method: str, carrier: Mapping[str, str]) -> CallSpan | None:
    """A server span for a call of ``method``, child of the caller's context in ``carrier`` (W3C headers);
    ``None`` when tracing is off."""
    if _state.tracer is None:
        return None
    from opentelemetry import propagate, trace

    parent = propagate.extract(carrier)
    span = _state.tracer.start_span(
        f"serve {_state.provider_id}.{method}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"rpc.system": "hostel", "rpc.method": method, "hostel.provider.id": _state.provider_id},
    )
    return CallSpan(span, trace.set_span_in_context(span, parent))


def inject() -> dict[str, str]:
    """The current context as W3C headers, for a call the provider makes through its deps; ``{}`` when off."""
    if _state.tracer is None:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def active(call: CallSpan | None) -> Iterator[None]:
    """``call.active()``, or nothing when there is no span."""
    if call is None:
        yield
        return
    with call.active():
        yield
