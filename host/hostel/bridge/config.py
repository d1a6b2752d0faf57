"""The bridge's provider config: the real provider, as it would appear in a hostel run config.

Llama Stack builds a provider's config from the class its spec names and passes nothing else to the
factory, so each API gets its own subclass (``InferenceBridgeConfig`` ...) that knows the API.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from hostel.bridge._server import BRIDGED_APIS

# The keys that become the provider's entry in hostel's run config.
_ENTRY_KEYS = {
    "provider_type", "module", "config", "pip_packages", "python", "constraints", "spec_overrides", "launcher",
    "container_image",
}  # fmt: skip


class BridgeConfig(BaseModel):
    """The real provider behind a bridged Llama Stack provider.

    ``provider_type``, ``module``, ``config``, ``pip_packages``, ``python``, ``constraints``,
    ``spec_overrides``, ``restart``, ``limits``, ``launcher`` and ``container_image`` mean what they mean in a
    hostel run config's provider entry (docs/config.md, docs/launchers.md); ``hostel`` holds hostel settings
    (``call_timeout_s``, ``standby_workers``, ``container``, ``ray`` ...).
    """

    model_config = ConfigDict(extra="forbid")

    api: ClassVar[str] = ""

    provider_type: str = Field(description="the real provider's type, e.g. remote::ramalama")
    provider_id: str | None = Field(
        None, description="the name in hostel's logs (default: the provider type's name); best: the server's id"
    )
    module: str | None = Field(None, description="the real provider's package: module name[==version]")
    config: dict[str, Any] = Field(default_factory=dict, description="the real provider's own config")
    pip_packages: list[str] = Field(default_factory=list)
    python: str | None = None
    constraints: list[str] = Field(default_factory=list)
    spec_overrides: dict[str, Any] = Field(default_factory=dict)
    restart: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    launcher: Literal["process", "container", "ray"] | None = Field(
        None, description="where the worker runs (docs/launchers.md); default: process, or container for an image"
    )
    container_image: str | None = Field(None, description="the image for launcher: container")
    external_providers_dir: str | None = Field(None, description="where providers.d-style specs live")
    hostel: dict[str, Any] = Field(default_factory=dict, description="hostel settings (the run config's hostel:)")
    home: str | None = Field(None, description="hostel's env cache (default: $HOSTEL_HOME or ~/.cache/hostel)")
    required: bool = Field(
        True,
        description="false: a provider that cannot start leaves the server up, its calls failing with 503",
    )

    def run_config(self, provider_id: str) -> dict[str, Any]:
        """A hostel run config holding just this provider."""
        entry = self.model_dump(
            include=_ENTRY_KEYS,
            exclude_none=True,
        )
        entry.update({k: v for k, v in (("restart", self.restart), ("limits", self.limits)) if v is not None})
        raw: dict[str, Any] = {"providers": {self.api: [{"provider_id": provider_id, **entry}]}, "hostel": self.hostel}
        if self.external_providers_dir:
            raw["external_providers_dir"] = self.external_providers_dir
        return raw


def class_name(api: str) -> str:
    """``vector_io`` -> ``VectorIoBridgeConfig``."""
    return "".join(part.title() for part in api.split("_")) + "BridgeConfig"


def provider_id_for(provider_type: str) -> str:
    """A provider id for the real provider inside the bridge's host (its type's name)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", provider_type.rsplit("::", maxsplit=1)[-1]) or "provider"


for _api in BRIDGED_APIS:
    globals()[class_name(_api)] = type(class_name(_api), (BridgeConfig,), {"api": _api, "__module__": __name__})
