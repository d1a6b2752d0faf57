"""Prometheus metrics for the gateway: calls, errors, latency, in-flight, restarts, state, env build time, and
the memory and CPU time of every worker and of the host."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hostel.errors import HostelError, MethodNotFoundError, RemoteError
from hostel.supervise.status import State

if TYPE_CHECKING:
    from hostel.host import Host

STATES: tuple[str, ...] = typing.get_args(State)
# Method labels are bounded: a name becomes a label only once the provider answered a call to it (a client
# sending made-up names adds nothing), names are cut, and a provider has at most this many.
UNKNOWN_METHOD = "<unknown>"
OTHER_METHODS = "<other>"
_MAX_METHOD_LABEL = 64
_MAX_METHODS = 256


def error_kind(exc: BaseException) -> str:
    """A bounded label for an error: the hostel error class, or ``remote`` for a provider's own exception."""
    if isinstance(exc, RemoteError) and type(exc) is RemoteError:
        return "remote"
    return type(exc).__name__ if isinstance(exc, HostelError) else "cancelled"


class _StatusCollector(Collector):
    def __init__(self, host: Host) -> None:
        self._host = host

    def collect(self) -> Iterator[Any]:
        restarts = GaugeMetricFamily(
            "hostel_provider_restarts", "Restarts of the provider's worker", labels=["provider_id"]
        )
        state = GaugeMetricFamily(
            "hostel_provider_state", "1 for the provider's current state", labels=["provider_id", "state"]
        )
        build = GaugeMetricFamily(
            "hostel_env_build_seconds", "Seconds the provider's env took to build", labels=["provider_id"]
        )
        rss = GaugeMetricFamily(
            "hostel_worker_rss_bytes", "Resident memory of the provider's worker", labels=["provider_id"]
        )
        pss = GaugeMetricFamily(
            "hostel_worker_pss_bytes",
            "Proportional set size of the provider's worker (shared pages counted once across processes)",
            labels=["provider_id"],
        )
        cpu = CounterMetricFamily(
            "hostel_worker_cpu_seconds",
            "User and system CPU time of the provider's current worker",
            labels=["provider_id"],
        )
        for status in self._host.status(usage=True):
            restarts.add_metric([status.provider_id], status.restarts)
            for name in STATES:
                state.add_metric([status.provider_id, name], 1.0 if status.state == name else 0.0)
            for family, value in ((rss, status.rss_bytes), (pss, status.pss_bytes), (cpu, status.cpu_seconds)):
                if value is not None:
                    family.add_metric([status.provider_id], value)
        for provider_id, seconds in self._host.build_seconds().items():
            build.add_metric([provider_id], seconds)
        yield from (restarts, state, build, rss, pss, cpu)
        own = self._host.own_usage()
        if own is not None:
            yield GaugeMetricFamily("hostel_host_rss_bytes", "Resident memory of the host process", value=own.rss_bytes)
            if own.pss_bytes is not None:
                yield GaugeMetricFamily(
                    "hostel_host_pss_bytes", "Proportional set size of the host", value=own.pss_bytes
                )
            yield CounterMetricFamily("hostel_host_cpu_seconds", "CPU time of the host process", value=own.cpu_seconds)


class Metrics:
    """A registry of its own (never the process-global one) fed by the host's call observer."""

    def __init__(self, host: Host) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "hostel_calls", "Calls forwarded to providers", ["provider_id", "method"], registry=self.registry
        )
        self.errors = Counter(
            "hostel_call_errors", "Calls that failed, by kind", ["provider_id", "kind"], registry=self.registry
        )
        self.latency = Histogram(
            "hostel_call_seconds",
            "Call latency (streams: until the first reply)",
            ["provider_id"],
            registry=self.registry,
        )
        self.in_flight = Gauge("hostel_calls_in_flight", "Calls in flight", ["provider_id"], registry=self.registry)
        self.body_bytes = Gauge(
            "hostel_request_body_bytes_held",
            "Bytes of request bodies read or held by requests in flight (server.max_request_bodies_mb bounds it)",
            registry=self.registry,
        )
        self.registry.register(_StatusCollector(host))
        self._methods: dict[str, set[str]] = {}
        host.add_observer(self)

    def _method_label(self, provider_id: str, method: str, error: BaseException | None) -> str:
        known = self._methods.setdefault(provider_id, set())
        if method in known:
            return method[:_MAX_METHOD_LABEL]
        answered = error is None or (isinstance(error, RemoteError) and not isinstance(error, MethodNotFoundError))
        if not answered:
            return UNKNOWN_METHOD
        if len(known) >= _MAX_METHODS:
            return OTHER_METHODS
        known.add(method)
        return method[:_MAX_METHOD_LABEL]

    def started(self, provider_id: str, method: str) -> None:
        """CallObserver: a call begins."""
        self.in_flight.labels(provider_id).inc()

    def finished(self, provider_id: str, method: str, seconds: float, error: BaseException | None) -> None:
        """CallObserver: a call ended."""
        self.in_flight.labels(provider_id).dec()
        self.calls.labels(provider_id, self._method_label(provider_id, method, error)).inc()
        self.latency.labels(provider_id).observe(seconds)
        if error is not None:
            self.errors.labels(provider_id, error_kind(error)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
