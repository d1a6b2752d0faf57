"""The bridge's provider config: the real provider, as it would appear in a hostel run config.

Llama Stack builds a provider's config from the class its spec names and passes nothing else to the
factory, so each API gets its own subclass (``InferenceBridgeConfig`` ...) that knows the API.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hostel.bridge._server import BRIDGED_APIS
from hostel.config.problems import did_you_mean
from hostel.config.schema import PROVIDER_KEYS

# A provider entry's keys that the bridge sets itself, or that name the provider rather than tune it.
_OWN_KEYS = frozenset({"provider_id", "provider_type", "config", "module"})
# hostel's per-provider keys a bridge config takes besides its own fields, as a hostel provider entry has them.
ENTRY_KEYS = frozenset(PROVIDER_KEYS - _OWN_KEYS)


class BridgeOptions(BaseModel):
    """How hostel runs a bridged provider: every key of a hostel provider entry (``python``, ``pip_packages``,
    ``constraints``, ``spec_overrides``, ``env``, ``sandbox``, ``restart``, ``limits``, ``launcher``,
    ``replicas`` ..., docs/config.md), plus ``hostel`` (the run config's ``hostel:`` settings), ``home`` and
    ``required``."""

    model_config = ConfigDict(extra="allow")

    provider_id: str | None = Field(
        None, description="the name in hostel's logs (default: the provider type's name); best: the server's id"
    )
    module: str | None = Field(None, description="the real provider's package: module name[==version]")
    external_providers_dir: str | None = Field(None, description="where providers.d-style specs live")
    hostel: dict[str, Any] = Field(default_factory=dict, description="hostel settings (the run config's hostel:)")
    home: str | None = Field(None, description="hostel's env cache (default: $HOSTEL_HOME or ~/.cache/hostel)")
    required: bool = Field(
        True,
        description="false: a provider that cannot start leaves the server up, its calls failing with 503",
    )
    shared_host: bool | None = Field(
        None,
        description="whether the processes of a multi-process server share one worker of the provider "
        "(default: when the server runs several; false: one per server process)",
    )

    @model_validator(mode="after")
    def _known_keys(self) -> BridgeOptions:
        unknown = sorted(set(self.model_extra or {}) - ENTRY_KEYS)
        if unknown:
            accepted = sorted(ENTRY_KEYS | set(type(self).model_fields))
            hints = "".join(did_you_mean(key, accepted) for key in unknown)
            raise ValueError(
                f"unknown key(s) {', '.join(map(repr, unknown))}{hints}; "
                f"a bridged provider takes: {', '.join(accepted)}"
            )
        return self

    def hostel_run_config(
        self, api: str, provider_id: str, provider_type: str, config: dict[str, Any], *, module: str | None = None
    ) -> dict[str, Any]:
        """A hostel run config holding just this provider (``module``: when the options name none)."""
        entry: dict[str, Any] = {"provider_id": provider_id, "provider_type": provider_type, "config": config}
        if self.module or module:
            entry["module"] = self.module or module
        entry.update({key: value for key, value in (self.model_extra or {}).items() if value is not None})
        raw: dict[str, Any] = {"providers": {api: [entry]}, "hostel": self.hostel}
        if self.external_providers_dir:
            raw["external_providers_dir"] = self.external_providers_dir
        return raw


class BridgeConfig(BridgeOptions):
    """The real provider behind a bridged provider (``provider_type: remote::hostel-<api>``): its type and its
    own ``config``, and how hostel runs it (``BridgeOptions``)."""

    api: ClassVar[str] = ""

    provider_type: str = Field(description="the real provider's type, e.g. remote::ramalama")
    config: dict[str, Any] = Field(default_factory=dict, description="the real provider's own config")

    def run_config(self, provider_id: str) -> dict[str, Any]:
        """A hostel run config holding just this provider."""
        return self.hostel_run_config(self.api, provider_id, self.provider_type, self.config)


def class_name(api: str) -> str:
    """``vector_io`` -> ``VectorIoBridgeConfig``."""
    return "".join(part.title() for part in api.split("_")) + "BridgeConfig"


def provider_id_for(provider_type: str) -> str:
    """A provider id for the real provider inside the bridge's host (its type's name)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", provider_type.rsplit("::", maxsplit=1)[-1]) or "provider"


for _api in BRIDGED_APIS:
    globals()[class_name(_api)] = type(class_name(_api), (BridgeConfig,), {"api": _api, "__module__": __name__})
