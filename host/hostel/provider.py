"""Llama Stack's entry point for hostel as a provider module (``module: hostel`` in a run config).

The server imports ``<module>.provider`` and calls ``get_provider_spec()``; hostel answers with one spec
per API it can stand in for, typed ``remote::hostel-<api>`` (``remote::hostel-inference`` ...), and one per
provider type of the server's own registry (``inline::faiss`` ...). See ``hostel.bridge`` and
docs/llama-stack-bridge.md.
"""

from __future__ import annotations

from typing import Any


def get_provider_spec() -> list[Any]:
    """One ``RemoteProviderSpec`` per API of the running server that hostel can bridge (``remote::hostel-<api>``),
    and one per provider type of the server's own registry, bridged by that type (``hostel.bridge.mirror``)."""
    from hostel.bridge import mirror
    from hostel.bridge._server import BRIDGED_APIS, current
    from hostel.bridge.config import class_name

    server = current()
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
    return specs + mirror.specs(server)
