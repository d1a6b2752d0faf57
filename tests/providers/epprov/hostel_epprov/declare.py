"""The entry point: a spec as a plain mapping, as a provider without Llama Stack installed may give it."""

from __future__ import annotations

from typing import Any


def spec() -> dict[str, Any]:
    return {
        "api": "tool_runtime",
        "provider_type": "inline::epprov",
        "module": "hostel_epprov",
        "config_class": "hostel_epprov.Config",  # the entry said none: adopting this spec keeps the env
        "pip_packages": ["idna==3.7"],
        "api_dependencies": [],
    }
