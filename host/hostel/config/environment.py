"""What a provider's worker gets from the host's environment: the variables it passes, and the OpenTelemetry
settings of a host that traces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hostel.config.schema import HostelSettings, ProviderEntry

_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Set per worker by the host, or meant for the host's own process alone.
_OTEL_NOT_PASSED = ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_PYTHON_")


def traces(settings: HostelSettings, environ: Mapping[str, str]) -> bool:
    """Whether the host traces: ``hostel.telemetry.enabled``, else whether an OTLP endpoint is configured."""
    telemetry = settings.telemetry
    if telemetry.enabled is not None:
        return telemetry.enabled
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return telemetry.endpoint is not None or any(environ.get(name) for name in _OTLP_ENDPOINTS)


def otel_environment(settings: HostelSettings, environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What a tracing worker's exporter reads: the host's ``OTEL_`` variables, and ``hostel.telemetry``'s
    endpoint and headers over them."""
    values = {k: v for k, v in environ.items() if k.startswith("OTEL_") and not k.startswith(_OTEL_NOT_PASSED)}
    telemetry = settings.telemetry
    if telemetry.endpoint is not None:
        values["OTEL_EXPORTER_OTLP_ENDPOINT"] = telemetry.endpoint
        values.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    if telemetry.headers:
        values["OTEL_EXPORTER_OTLP_HEADERS"] = ",".join(f"{k}={v}" for k, v in telemetry.headers.items())
    return tuple(sorted(values.items()))


def collector_port(settings: HostelSettings, environ: Mapping[str, str]) -> int:
    """The TCP port traces are exported to (a sandboxed worker with network rules may connect to it)."""
    from urllib.parse import urlsplit

    url = settings.telemetry.endpoint or next((environ[n] for n in _OTLP_ENDPOINTS if environ.get(n)), "")
    parts = urlsplit(url or "http://localhost:4318")
    return parts.port or (443 if parts.scheme == "https" else 80 if url else 4318)


def worker_environment(
    pass_env: Sequence[str], entry: ProviderEntry, environ: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """The variables a worker gets besides the minimal ones: ``pass_env`` and its ``env:`` names that are set, and
    the values its ``env:`` sets."""
    values: dict[str, str] = {name: environ[name] for name in pass_env if name in environ}
    for name, value in entry.environment:
        if value is not None:
            values[name] = value
        elif name in environ:
            values[name] = environ[name]
    return tuple(values.items())
