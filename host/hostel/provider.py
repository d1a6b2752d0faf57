"""Llama Stack's entry point for hostel as a provider module (``module: hostel`` in a run config).

The server imports ``<module>.provider`` and calls ``get_provider_spec()``; hostel answers with one spec
per API it can stand in for, typed ``remote::hostel-<api>`` (``remote::hostel-inference`` ...), and one per
provider type of the server's own registry (``inline::faiss`` ...). See ``hostel.bridge`` and
docs/llama-stack-bridge.md.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from hostel.errors import ConfigError, Problem

# How far up the stack the server's loop over its config's providers may be from get_provider_spec().
_CALLER_DEPTH = 4


def get_provider_spec() -> list[Any]:
    """One ``RemoteProviderSpec`` per API of the running server that hostel can bridge (``remote::hostel-<api>``),
    and one per provider type of the server's own registry, bridged by that type (``hostel.bridge.mirror``).

    When the server asks for one entry of its config (its loader's ``provider_api``), the registry's types are
    offered for that API alone: the loader takes every spec of the entry's type from the list, whatever its API,
    and the last one wins, so a type two APIs share (OGX's ``inline::builtin`` serves responses, messages,
    interactions and skills) would get another API's config class. An entry of an API hostel cannot bridge is a
    ``ConfigError`` naming it, never the in-process provider it would otherwise silently be."""
    from hostel.bridge import mirror
    from hostel.bridge._server import BRIDGED_APIS, current
    from hostel.bridge.config import class_name

    server = current()
    asking = _asking_api()
    if asking is not None and (asking not in BRIDGED_APIS or server.protocol(asking) is None):
        bridged = sorted(api for api in BRIDGED_APIS if server.protocol(api) is not None)
        raise ConfigError(
            [
                Problem(
                    "hostel bridge",
                    f"providers.{asking}",
                    f"hostel cannot bridge {server.name} {server.version}'s {asking} API (it knows no provider "
                    f"protocol for it): remove `module: hostel` to run this provider in process; APIs hostel "
                    f"bridges here: {', '.join(bridged)}",
                )
            ]
        )
    specs = []
    for api in BRIDGED_APIS:
        try:
            member = server.api_enum(api)
        except ValueError:
            continue  # an API this server version does not have
        if server.protocol(api) is None:
            continue
        optional = []
        for dep in server.dependency_apis(api):
            try:
                optional.append(server.api_enum(dep))
            except ValueError:
                continue
        specs.append(
            server.api_package.RemoteProviderSpec(
                api=member,
                provider_type=f"remote::hostel-{api}",
                adapter_type=f"hostel-{api}",
                module="hostel.bridge",
                config_class=f"hostel.bridge.config.{class_name(api)}",
                pip_packages=[],
                optional_api_dependencies=optional,
                description=f"Any {api} provider, run by hostel in its own virtualenv and supervised process.",
            )
        )
    return specs + mirror.specs(server, only=asking)


def _asking_api() -> str | None:
    """The API of the config entry the server is loading, from its loader's frame (Llama Stack's and OGX's
    ``get_external_providers_from_module`` loop over ``provider_api, providers``), or ``None`` if not found."""
    frame: FrameType | None = sys._getframe(2)  # the loader passes no argument: its frame is the only place to ask
    for _ in range(_CALLER_DEPTH):
        if frame is None:
            return None
        value = frame.f_locals.get("provider_api")
        if value is not None:
            return str(getattr(value, "value", value))
        frame = frame.f_back
    return None
