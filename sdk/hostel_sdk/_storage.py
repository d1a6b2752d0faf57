"""The server's storage backends, registered in the worker before the provider's factory runs.

OGX 1.x (and Llama Stack 0.3+) providers do not own their storage: their config names a backend
(``persistence: {backend: kv_default, namespace: ...}``, ``metadata_store: {backend: sql_default, ...}``) that
the server registers at start from its run config's ``storage:`` section. A worker registers the same backends,
from the same section, so those references resolve to the same sqlite files or the same Postgres as they would
in the server's process. Without OGX's (or Llama Stack's) core in the venv there is nothing to register: a
provider that only imports the API package cannot resolve such references anyway.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pydantic import TypeAdapter

logger = logging.getLogger(__name__)

# The server distributions whose storage registries a provider's references resolve against, newest first.
_DISTRIBUTIONS = ("ogx", "llama_stack")


def _storage_modules(distribution: str) -> tuple[ModuleType, ModuleType, ModuleType] | None:
    """``(datatypes, kvstore, sqlstore)`` of a distribution's storage package, or ``None`` if it lacks one."""
    names = ("core.storage.datatypes", "core.storage.kvstore.kvstore", "core.storage.sqlstore.sqlstore")
    try:
        return tuple(importlib.import_module(f"{distribution}.{name}") for name in names)  # type: ignore[return-value]
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == distribution or exc.name.startswith(f"{distribution}.core.storage")):
            return None
        raise


def register_storage(storage: Mapping[str, Any]) -> list[str]:
    """Register ``storage["backends"]`` (a run config's ``storage.backends``: name -> backend config) with every
    server distribution installed in this venv, and its tenancy setting when given; return the distributions.

    ``ValueError`` (pydantic's) when a backend's config does not validate.
    """
    registered = []
    for distribution in _DISTRIBUTIONS:
        modules = _storage_modules(distribution)
        if modules is None:
            continue
        datatypes, kvstore, sqlstore = modules
        adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, datatypes.StorageBackendConfig])  # type: ignore[name-defined]
        backends = adapter.validate_python(dict(storage.get("backends") or {}))
        kinds = {name: str(getattr(config.type, "value", config.type)) for name, config in backends.items()}
        kvstore.register_kvstore_backends({n: c for n, c in backends.items() if kinds[n].startswith("kv_")})
        sqlstore.register_sqlstore_backends({n: c for n, c in backends.items() if kinds[n].startswith("sql_")})
        if storage.get("tenancy") is not None:
            _set_tenancy(distribution, storage["tenancy"])
        registered.append(distribution)
    if not registered:
        logger.debug("storage backends given, but neither OGX nor Llama Stack core is in this venv: not registered")
    return registered


def _set_tenancy(distribution: str, tenancy: Any) -> None:
    try:
        authorized = importlib.import_module(f"{distribution}.core.storage.sqlstore.authorized_sqlstore")
        datatypes = importlib.import_module(f"{distribution}.core.datatypes")
    except ModuleNotFoundError:
        return
    setter = getattr(authorized, "set_default_tenancy_config", None)
    config_class = getattr(datatypes, "TenancyConfig", None)
    if setter is not None and config_class is not None:
        setter(TypeAdapter(config_class).validate_python(tenancy))
