"""The Llama Stack (or OGX) server the bridge runs in: its API package, its protocols, its request context.

Imported only inside a server process, so Llama Stack is never a dependency of hostel itself.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from hostel.envs.spec import provider_package
from hostel.errors import ConfigError, Problem
from hostel_sdk._llama_stack import PROTOCOLS, private_protocol_class, protocol_class

# The APIs a provider can serve whose protocol the bridge can stand in for.
BRIDGED_APIS = tuple(PROTOCOLS)


@dataclass(frozen=True)
class Server:
    """One server distribution: Llama Stack (``llama_stack`` + ``llama_stack_api``) or OGX (``ogx`` + ``ogx_api``)."""

    name: str
    core: str  # the server package
    api_package: ModuleType

    @property
    def version(self) -> str:
        """The server distribution's version."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.core.replace("_", "-"))
        except PackageNotFoundError:
            return "unknown"

    def api_enum(self, api: str) -> Any:
        """The server's ``Api`` member for ``api``; ``ValueError`` if this server has no such API."""
        return self.api_package.Api(api)

    def protocol(self, api: str) -> type | None:
        """The protocol a provider of ``api`` implements (``InferenceProvider`` ...), or ``None`` if none."""
        return protocol_class(self.api_package, api)

    def private_protocol(self, api: str) -> type | None:
        """What the routing tables call on a provider of ``api`` (``register_model``, ``list_models`` ...)."""
        return private_protocol_class(self.api_package, api)

    def test_settings(self) -> list[str]:
        """The server's test-recording settings its environment has (``OGX_TEST_*``; Llama Stack's
        ``LLAMA_STACK_TEST_*``): with them, a bridged worker records or replays its model calls as the server does
        its own providers' (``hostel_sdk._test_recording``)."""
        prefix = f"{self.core.upper()}_TEST_"
        return sorted(name for name in os.environ if name.startswith(prefix))

    def provider_data_var(self) -> ContextVar[Any] | None:
        """The server's request provider data, as it parsed it from ``X-OGX-Provider-Data`` (or Llama Stack's
        ``X-LlamaStack-Provider-Data``)."""
        module = sys.modules.get(f"{self.core}.core.request_headers")
        if module is None:
            try:
                module = importlib.import_module(f"{self.core}.core.request_headers")
            except ImportError:
                return None
        var = getattr(module, "PROVIDER_DATA_VAR", None)
        return var if isinstance(var, ContextVar) else None

    def registry(self, api: str) -> list[Any]:
        """The specs of the server's own providers of ``api`` (its registry), or none."""
        try:
            registry = importlib.import_module(f"{self.core}.providers.registry.{api}")
            return list(registry.available_providers())
        except Exception:  # noqa: BLE001 - no registry for this API in this version
            return []

    def requirement(self) -> str:
        """How to install this server's distribution into a provider's env: the same source directory for a local
        install, else ``name==version``."""
        return provider_package(self.core, []) or f"{self.core.replace('_', '-')}=={self.version}"

    def storage(self) -> dict[str, Any] | None:
        """The storage backends the server registered from its run config's ``storage:`` section (and its tenancy
        setting), as JSON: what a bridged provider's worker registers too. ``None`` for a server without them."""
        kvstore = sys.modules.get(f"{self.core}.core.storage.kvstore.kvstore")
        sqlstore = sys.modules.get(f"{self.core}.core.storage.sqlstore.sqlstore")
        if kvstore is None or sqlstore is None:
            return None
        # Module state both registries keep (no public reader exists): what register_*_backends() was given.
        backends = {**getattr(kvstore, "_KVSTORE_BACKENDS", {}), **getattr(sqlstore, "_SQLSTORE_BACKENDS", {})}
        storage: dict[str, Any] = {"backends": {name: as_json(config) for name, config in backends.items()}}
        authorized = sys.modules.get(f"{self.core}.core.storage.sqlstore.authorized_sqlstore")
        tenancy = getattr(authorized, "get_default_tenancy_config", None)
        if tenancy is not None:
            storage["tenancy"] = as_json(tenancy())
        return storage

    def dependency_apis(self, api: str) -> list[str]:
        """The APIs the server's own providers of ``api`` may depend on: a bridged provider may use them too."""
        found: dict[str, None] = {}
        for spec in self.registry(api):
            for dep in [*getattr(spec, "api_dependencies", []), *getattr(spec, "optional_api_dependencies", [])]:
                value = str(getattr(dep, "value", dep))
                if value != api:
                    found[value] = None
        return list(found)


def as_json(value: Any) -> Any:
    """A config object as JSON values, secrets revealed (it goes to the provider's own worker, on its stdin)."""
    if isinstance(value, BaseModel):
        return as_json(value.model_dump(by_alias=True))
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(item) for item in value]
    if isinstance(value, (SecretStr, SecretBytes)):
        return as_json(value.get_secret_value())
    return to_jsonable_python(value)


@cache
def current() -> Server:
    """The server this process runs: the one already imported, else the first installed."""
    candidates = (("Llama Stack", "llama_stack", "llama_stack_api"), ("OGX", "ogx", "ogx_api"))
    ordered = sorted(candidates, key=lambda c: c[1] not in sys.modules)
    for name, core, api_name in ordered:
        try:
            return Server(name, core, importlib.import_module(api_name))
        except ImportError:
            continue
    raise ConfigError(
        [
            Problem(
                "hostel bridge",
                "",
                "neither llama_stack_api nor ogx_api is importable: the bridge runs inside a Llama Stack or OGX "
                "server (pip install llama-stack or ogx beside hostel)",
            )
        ]
    )
