"""Drop-in isolation for a Llama Stack (or OGX) server: a provider whose implementation is a hostel worker.

In the server's run config::

    providers:
      inference:
      - provider_id: ramalama
        provider_type: remote::hostel-inference
        module: hostel
        config:
          provider_type: remote::ramalama
          module: ramalama_stack==0.3.0
          config: {url: http://localhost:8080}

or, for one of the server's own providers, by its own type (its config as in process, hostel's keys under
``hostel:``)::

    providers:
      files:
      - provider_id: localfs
        provider_type: inline::localfs
        module: hostel
        config:
          storage_dir: /var/lib/files
          metadata_store: {backend: sql_default, table_name: files_metadata}
          hostel: {restart: {max_restarts: 3}}

The server imports ``hostel.provider`` (``get_provider_spec``), then calls ``get_adapter_impl`` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hostel.bridge._adapter import get_adapter_impl
    from hostel.bridge._impl import Bridge
    from hostel.bridge.config import BridgeConfig

__all__ = ["Bridge", "BridgeConfig", "get_adapter_impl"]

# Imported when first asked for: a hub process (``python -m hostel.bridge.hub``) needs none of the server's side.
_LAZY = {
    "get_adapter_impl": "hostel.bridge._adapter",
    "Bridge": "hostel.bridge._impl",
    "BridgeConfig": "hostel.bridge.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
