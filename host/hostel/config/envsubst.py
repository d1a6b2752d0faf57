"""``${env.NAME}``, ``${env.NAME:=default}`` and ``${env.NAME:+value}`` substitution, as in Llama Stack run configs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_PATTERN = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:\+)([^}]*))?\}")


def _item_name(item: Any, index: int) -> str:
    """A list item as errors name it: a provider entry by its id (as written), anything else by its index."""
    named = isinstance(item, dict) and isinstance(item.get("provider_id"), str) and "${" not in item["provider_id"]
    return str(item["provider_id"]) if named and item["provider_id"] else str(index)


def substitute(tree: Any, environ: Mapping[str, str], on_missing: Callable[[str, str], None], path: str = "") -> Any:
    """Return ``tree`` with every string substituted; ``on_missing(key_path, NAME)`` for unset variables."""
    if isinstance(tree, dict):
        return {k: substitute(v, environ, on_missing, f"{path}.{k}" if path else str(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [substitute(v, environ, on_missing, f"{path}[{_item_name(v, i)}]") for i, v in enumerate(tree)]
    if not isinstance(tree, str) or "${" not in tree:
        return tree

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = environ.get(name)
        if op == ":=":
            return value if value else arg
        if op == ":+":
            return arg if value else ""
        if value is None:
            on_missing(path, name)
            return ""
        return value

    return _PATTERN.sub(replace, tree)
