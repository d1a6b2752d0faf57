"""Hooks for ``bench/bench_bridge_steps.py``, put on an OGX server's and a worker's ``PYTHONPATH`` by that benchmark
only (hostel never imports this). Python runs ``sitecustomize`` at start; with ``HOSTEL_BENCH_STEPS`` unset it does
nothing.

- ``HOSTEL_BENCH_STEPS=canned:METHOD``: the bridge answers ``METHOD`` from memory after its first call (the
  worker's first answer, kept): what a bridged request costs without the trip to the worker.
- ``HOSTEL_BENCH_STEPS=timed:METHOD:DIR``: each step of a call through a worker session (of the bridge's, only
  ``METHOD``'s) is stamped with ``time.perf_counter_ns()`` (CLOCK_MONOTONIC on Linux, one clock for every
  process) and the stamps are written to ``DIR/steps-PID.json`` once ``DIR/dump`` exists.

The functions are wrapped as their modules are imported, so a worker forked from a zygote has them too.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

# What each step's stamp is taken at: (module, class, function, label at entry, label at exit or None).
# tests/test_bench_steps.py checks that these still name hostel's functions.
TARGETS = (
    ("hostel.bridge._impl", "Bridge", "_call", "bridge.in", "bridge.out"),
    ("hostel.transport.session", "Session", "call", "session.in", "session.out"),
    ("hostel_sdk._messages", "SessionRequest", "SerializeToString", "request.serialize", None),
    ("hostel_sdk._messages", "SessionRequest", "FromString", "request.parse", "request.parsed"),
    ("hostel_sdk._service", "ProviderService", "call_unary", "call.in", "call.out"),
    ("hostel_sdk._messages", "SessionReply", "SerializeToString", "reply.serialize", None),
    ("hostel_sdk._messages", "SessionReply", "FromString", "reply.parse", "reply.parsed"),
)

_stamps: list[tuple[int, str]] = []


def _stamped(function: Any, entry: str, leave: str | None, only: str | None) -> Any:
    """``function`` recording ``entry`` as it is called and ``leave`` as it returns (``only``, for a coroutine
    function: just for calls whose second argument, a method name, is that)."""
    now, stamps = time.perf_counter_ns, _stamps

    def wanted(args: tuple[Any, ...]) -> bool:
        return only is None or (len(args) > 1 and args[1] == only)

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not wanted(args):
                return await function(*args, **kwargs)
            stamps.append((now(), entry))
            try:
                return await function(*args, **kwargs)
            finally:
                if leave:
                    stamps.append((now(), leave))

        return wrapper

    @functools.wraps(function)
    def plain(*args: Any, **kwargs: Any) -> Any:
        stamps.append((now(), entry))
        try:
            return function(*args, **kwargs)
        finally:
            if leave:
                stamps.append((now(), leave))

    return plain


def _canned(function: Any, method: str) -> Any:
    kept: dict[str, Any] = {}

    @functools.wraps(function)
    async def wrapper(self: Any, called: str, *args: Any, **kwargs: Any) -> Any:
        if called != method:
            return await function(self, called, *args, **kwargs)
        if called not in kept:
            kept[called] = await function(self, called, *args, **kwargs)
        return kept[called]

    return wrapper


def _patch(module: ModuleType, kind: str, method: str) -> None:
    for name, owner_name, attribute, entry, leave in TARGETS:
        if name != module.__name__:
            continue
        owner = getattr(module, owner_name)
        raw = owner.__dict__[attribute]
        if kind == "canned":
            if entry == "bridge.in":
                setattr(owner, attribute, _canned(raw, method))
        elif isinstance(raw, classmethod):
            setattr(owner, attribute, classmethod(_stamped(raw.__func__, entry, leave, None)))
        else:
            setattr(owner, attribute, _stamped(raw, entry, leave, method if entry == "bridge.in" else None))


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, kind: str, method: str) -> None:
        self._inner, self._kind, self._method = inner, kind, method

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _patch(module, self._kind, self._method)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the targets' modules as the other finders do, then patches them once they are executed."""

    def __init__(self, kind: str, method: str) -> None:
        self._kind, self._method = kind, method
        self._names = {target[0] for target in TARGETS}

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self._names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader, self._kind, self._method)
                return spec
        return None


def _write_when_asked(folder: Path) -> None:
    while not (folder / "dump").exists():
        time.sleep(0.2)
    written = folder / f"steps-{os.getpid()}.json"
    partial = written.with_suffix(".partial")
    partial.write_text(json.dumps({"argv": sys.argv[:4], "stamps": _stamps}))
    partial.replace(written)  # whoever waits for the file reads it whole


def _start_writer(folder: Path) -> None:
    _stamps.clear()  # a forked worker starts with none of its zygote's
    threading.Thread(target=_write_when_asked, args=(folder,), daemon=True).start()


def _install(mode: str) -> None:
    """``mode``: ``canned:METHOD`` or ``timed:METHOD:DIR`` (the module's docstring)."""
    kind, method, folder = (*mode.split(":", 2), "")[:3]
    sys.meta_path.insert(0, _Finder(kind, method))
    if kind == "timed":
        _start_writer(Path(folder))
        os.register_at_fork(after_in_child=lambda: _start_writer(Path(folder)))


if os.environ.get("HOSTEL_BENCH_STEPS"):
    _install(os.environ["HOSTEL_BENCH_STEPS"])
