"""The layers' import rules, checked over the import graph (type-checking-only imports aside).

Break a rule and the failure names the importing module, the line and the import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from hostel_sdk._contract import SHARED_WITH_HOST
from tests.conftest import REPO

HOST = REPO / "host" / "hostel"
SDK = REPO / "sdk" / "hostel_sdk"
CORE = {"hostel.host", "hostel.proxy", "hostel.router", "hostel.errors", "hostel.resources", "hostel.registry"}


def _module(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports (``from x import y`` gives ``x`` and ``x.y``), outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _graph(root: Path, package: str) -> dict[str, list[tuple[int, str]]]:
    return {_module(p, root, package): list(_imports(p)) for p in sorted(root.rglob("*.py")) if "_proto" not in p.parts}


def _layer(module: str) -> str:
    if module in CORE or module in ("hostel", "hostel.__main__", "hostel.provider"):
        return "core" if module in CORE else "front"
    parts = module.split(".")
    layers = ("config", "envs", "launch", "transport", "supervise", "gateway", "cli", "bridge")
    if len(parts) > 1 and parts[1] in layers:
        return parts[1]
    return "util"  # _redact, _environ: leaves anyone may use


# Which layers each layer may not import (front doors are above the core; the core above what it drives).
FORBIDDEN = {
    "util": {"config", "envs", "launch", "transport", "supervise", "core", "gateway", "cli", "bridge"},
    "config": {"envs", "launch", "transport", "supervise", "core", "gateway", "cli", "bridge"},
    "envs": {"launch", "transport", "supervise", "core", "gateway", "cli", "bridge"},
    "transport": {"envs", "launch", "supervise", "core", "gateway", "cli", "bridge"},
    "launch": {"supervise", "core", "gateway", "cli", "bridge"},
    "supervise": {"core", "gateway", "cli", "bridge"},  # the workers' policy: it knows no front door
    "core": {"gateway", "cli", "bridge"},
    "gateway": {"cli", "bridge"},
    "bridge": {"cli"},  # it mounts the gateway's resource routes into an OGX server
    "cli": {"bridge"},
}
LIGHT = {"hostel.errors"}  # errors are everyone's: every layer raises them


def _host_edges() -> Iterator[tuple[str, int, str, str]]:
    graph = _graph(HOST, "hostel")
    for module, imports in graph.items():
        for line, target in imports:
            if target.startswith("hostel.") and target in graph and target not in LIGHT:
                yield module, line, target, _layer(target)


def test_the_sdk_never_imports_the_host() -> None:
    bad = [(m, line, t) for m, imports in _graph(SDK, "hostel_sdk").items() for line, t in imports
           if t == "hostel" or t.startswith("hostel.")]  # fmt: skip
    assert bad == [], f"hostel_sdk is installed alone in provider venvs; these import the host: {bad}"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    bad = [
        f"{module}:{line} imports {target} ({_layer(module)} may not import {layer})"
        for module, line, target, layer in _host_edges()
        if layer in FORBIDDEN.get(_layer(module), set())
    ]
    assert bad == [], "\n".join(bad)


def test_the_layers_import_one_another_without_cycles() -> None:
    edges: dict[str, set[str]] = {}
    for module, _, _target, layer in _host_edges():
        if _layer(module) != layer:
            edges.setdefault(_layer(module), set()).add(layer)

    def reach(start: str, seen: set[str]) -> bool:
        return any(nxt == start_layer or (nxt not in seen and reach(nxt, seen | {nxt})) for nxt in edges.get(start, ()))

    for start_layer in edges:
        assert not reach(start_layer, {start_layer}), f"a cycle through {start_layer}: {edges}"


def test_the_host_imports_only_the_sdks_shared_contract() -> None:
    bad = [
        f"{module}:{line} imports {target}"
        for module, imports in _graph(HOST, "hostel").items()
        for line, target in imports
        if target.startswith("hostel_sdk")
        and target not in SHARED_WITH_HOST
        and target.rsplit(".", 1)[0] not in SHARED_WITH_HOST  # `from hostel_sdk._wire import X` names X too
    ]
    assert bad == [], "\n".join(bad) + "\n(add the module to hostel_sdk._contract.SHARED_WITH_HOST, or do without it)"
