"""Credentials inside URLs (``https://user:token@index/simple``) never reach a file hostel writes or a message.

Requirement strings and index URLs may carry them; pip and uv accept them there. hostel keeps them in
memory to install, and shows ``https://***@index/simple`` everywhere else: env metadata, error messages,
logged commands.
"""

from __future__ import annotations

import re
from typing import Any

_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text) if "@" in text else text


def redact_all(value: Any) -> Any:
    """``value`` (JSON-like: str, list, tuple, dict) with ``redact`` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_all(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(item) for item in value]
    return value
