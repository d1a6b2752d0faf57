"""The server's own providers, bridged by their own type.

``module: hostel`` with ``provider_type: inline::faiss`` runs OGX's own faiss provider in a hostel worker:
``hostel.provider.get_provider_spec()`` offers, besides ``remote::hostel-<api>``, every provider type of the
running server's registry, each with a config class made here on request: the real provider's own config class
plus a ``hostel:`` key (``BridgeOptions``). The server so validates and completes the provider's config as it does
in process (the defaults it injects included) and lists the provider under its real type; the worker's env gets
the server's own distribution at the server's version and reads the provider's spec from the registry in it.

The config classes are named ``Bridged_<API and type, escaped>``; ``hostel.bridge.mirror.<name>`` makes them.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from hostel.bridge._server import BRIDGED_APIS, Server
from hostel.bridge.config import BridgeOptions

logger = logging.getLogger(__name__)

_PREFIX = "Bridged_"
_ESCAPE = re.compile(r"[^A-Za-z0-9]")
_UNESCAPE = re.compile(r"_([0-9a-f]{4})")


def config_class_name(api: str, provider_type: str) -> str:
    """``files``, ``inline::localfs`` -> ``Bridged_files_002finline_003a_003alocalfs``: a name that holds both."""
    text = f"{api}/{provider_type}"
    return _PREFIX + _ESCAPE.sub(lambda m: f"_{ord(m.group()):04x}", text)


def _decode(name: str) -> tuple[str, str]:
    api, _, provider_type = _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name[len(_PREFIX) :]).partition("/")
    return api, provider_type


class _Permissive(BaseModel):
    """A stand-in for a config class the server cannot import: any keys, checked in the worker."""

    model_config = ConfigDict(extra="allow")


def _real_config_class(server: Server, api: str, provider_type: str) -> type[BaseModel]:
    spec = next((s for s in server.registry(api) if s.provider_type == provider_type), None)
    path = getattr(spec, "config_class", None) or ""
    module, _, attr = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # noqa: BLE001 - the worker builds it and reports what is wrong
        logger.warning("hostel bridge: the server cannot import %s's config class %r (%s)", provider_type, path, exc)
        return _Permissive
    return found if isinstance(found, type) and issubclass(found, BaseModel) else _Permissive


@functools.cache
def config_class(name: str) -> type[BaseModel]:
    """The config class called ``name``: the real provider's config class with a ``hostel:`` key."""
    from hostel.bridge._server import current

    api, provider_type = _decode(name)
    real = _real_config_class(current(), api, provider_type)
    made: type[BaseModel] = create_model(
        name,
        __base__=real,
        __module__=__name__,
        hostel=(BridgeOptions, Field(default_factory=BridgeOptions, description="how hostel runs this provider")),
    )
    made.__hostel_bridged__ = (api, provider_type)  # type: ignore[attr-defined]
    return made


def bridged_type(config: Any) -> tuple[str, str] | None:
    """``(api, provider_type)`` of a config made here, else ``None``."""
    found = getattr(type(config), "__hostel_bridged__", None)
    return found if isinstance(found, tuple) else None


def specs(server: Server, *, only: str | None = None) -> list[Any]:
    """A ``RemoteProviderSpec`` for every provider type in the server's registry, of every API hostel can bridge
    (or of ``only``), served by ``hostel.bridge`` with a config class made here."""
    made = []
    for api in BRIDGED_APIS if only is None else (only,):
        try:
            member = server.api_enum(api)
        except ValueError:
            continue
        if server.protocol(api) is None:
            continue
        for spec in server.registry(api):
            name = spec.provider_type.partition("::")[2] or spec.provider_type
            made.append(
                server.api_package.RemoteProviderSpec(
                    api=member,
                    provider_type=spec.provider_type,
                    adapter_type=name,
                    module="hostel.bridge",
                    config_class=f"{__name__}.{config_class_name(api, spec.provider_type)}",
                    pip_packages=[],
                    api_dependencies=list(spec.api_dependencies),
                    optional_api_dependencies=list(spec.optional_api_dependencies),
                    description=f"The server's own {spec.provider_type}, in a hostel worker of its own.",
                    **_read_by_the_server(server, spec),
                )
            )
    return made


# What a server reads from a provider's spec itself, rather than the provider: OGX registers a tool runtime's tool
# group (``builtin::websearch``) from its spec's ``toolgroup_id``, and warns of or refuses a deprecated provider.
_SERVER_READS = ("toolgroup_id", "deprecation_warning", "deprecation_error")


def _read_by_the_server(server: Server, spec: Any) -> dict[str, Any]:
    fields = getattr(server.api_package.RemoteProviderSpec, "model_fields", {})
    return {name: getattr(spec, name) for name in _SERVER_READS if name in fields and getattr(spec, name, None)}


def __getattr__(name: str) -> Any:
    if name.startswith(_PREFIX):
        return config_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
