"""Llama Stack's answer shapes for the gateway's inspection routes, with secrets kept out of them.

``GET /v1/providers`` answers ``{"data": [ProviderInfo...]}`` as Llama Stack does, so ``llama-stack-client``'s
``providers.list()`` and ``retrieve()`` work unchanged: ``api``, ``provider_id``, ``provider_type``, the
provider's ``config`` with secrets redacted, and ``health``; hostel's own status fields ride along.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hostel._redact import redact
from hostel.supervise.status import ProviderStatus

REDACTED = "********"
# Config keys whose values are secrets, as Llama Stack and pydantic's SecretStr users name them.
_SECRET_KEY = re.compile(r"(key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)


def redact_config(value: Any) -> Any:
    """``value`` with every value under a secret-looking key replaced, and credentials in URLs removed."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) and item not in (None, "") else redact_config(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_config(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


# States in which a provider answers calls: running, lazily waiting for its first call (or idle again), being
# replaced while its old worker serves, or stopped on purpose by the operator.
SERVING = frozenset({"ready", "idle", "replacing", "stopped"})


def provider_info(
    status: ProviderStatus, config: Mapping[str, Any], health: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Llama Stack's ``ProviderInfo`` for one provider, with hostel's status fields. ``health`` is what the
    provider's own ``health()`` said (``hostel.gateway.health``); without it, what its state says."""
    if health is None:
        health = (
            {"status": "OK"}
            if status.state in SERVING and status.state != "stopped"
            else {"status": "Error", "message": f"provider is {status.state}"}
        )
    return {
        "api": status.api,
        "provider_id": status.provider_id,
        "provider_type": status.provider_type,
        "config": redact_config(dict(config)),
        "health": health,
        **{k: v for k, v in status.to_dict().items() if k not in ("api", "provider_id", "provider_type")},
    }
