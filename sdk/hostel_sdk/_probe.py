"""Run inside a provider's venv after it is built: find the provider's spec and check that it imports.

    python -m hostel_sdk._probe '{"module": ..., "provider_type": ..., "api": ..., "find_spec": true, ...}'

Prints one JSON object on stdout: ``{"spec": {...} | null, "found": [provider types], "error": str | null,
"stage": "spec" | "import" | "config" | "factory" | null}``. A resolved env is not a working env: two
published providers install cleanly and then fail to import, so the host runs this before any start.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import py_compile
import sys
import traceback
from enum import Enum
from typing import Any

_SPEC_FIELDS = (
    "provider_type", "adapter_type", "module", "config_class", "pip_packages", "api_dependencies",
    "optional_api_dependencies", "provider_data_validator", "container_image",
)  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """A Llama Stack ProviderSpec (any version: flat, or with an ``adapter`` block) as plain JSON."""
    data = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec) if isinstance(spec, dict) else vars(spec)
    adapter = data.pop("adapter", None)
    if isinstance(adapter, dict):
        data = {**data, **{k: v for k, v in adapter.items() if v is not None}}
    out = {k: _plain(data.get(k)) for k in _SPEC_FIELDS if data.get(k) is not None}
    out["api"] = _plain(getattr(spec, "api", data.get("api")))
    return out


def _call_spec_function(function: Any) -> list[Any]:
    result = function()
    return list(result) if isinstance(result, (list, tuple)) else [result]


def find_specs(module: str, api: str) -> list[dict[str, Any]]:
    """Every spec the package declares: ``get_provider_spec()`` (module or ``.provider``), then entry points, then
    a server distribution's registry of its own providers."""
    specs: list[Any] = []
    for name in (f"{module}.provider", module):
        try:
            found = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        function = getattr(found, "get_provider_spec", None)
        if callable(function):
            specs = _call_spec_function(function)
            break
    top = module.split(".", maxsplit=1)[0]
    if not specs:
        for kind in ("remote", "inline"):
            for entry in importlib.metadata.entry_points(group=f"llama_stack.providers.{kind}.{api}"):
                if entry.value.split(":")[0].split(".")[0] == top:
                    specs.extend(_call_spec_function(entry.load()))
    if not specs:
        specs = _registry_specs(top, api)
    return [spec_to_dict(s) for s in specs]


def _registry_specs(top: str, api: str) -> list[Any]:
    """A server distribution's own providers (``module: ogx==1.5.0`` with ``provider_type: inline::faiss``): its
    registry, ``<package>.providers.registry.<api>.available_providers()``, as OGX and Llama Stack keep it."""
    name = f"{top}.providers.registry.{api}"
    try:
        registry = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return []
        raise
    available = getattr(registry, "available_providers", None)
    return _call_spec_function(available) if callable(available) else []


def _pick(specs: list[dict[str, Any]], provider_type: str) -> dict[str, Any] | None:
    kind, _, name = provider_type.partition("::")
    for spec in specs:
        if spec.get("provider_type") == provider_type:
            return spec
    for spec in specs:  # older specs may carry only adapter_type
        if kind == "remote" and spec.get("adapter_type") == name:
            return spec
    return None


def _import_attr(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Find the spec (if asked) and check module, config class and factory import."""
    result: dict[str, Any] = {"spec": None, "found": [], "error": None, "stage": None}
    module = request["module"]
    spec = None
    if request.get("find_spec"):
        try:
            specs = find_specs(module, request["api"])
        except Exception as exc:  # noqa: BLE001 - reported with its cause
            return {**result, "stage": "spec", "error": _describe(exc)}
        result["found"] = [s.get("provider_type") for s in specs]
        spec = _pick(specs, request["provider_type"])
        if spec is None:
            found = ", ".join(t for t in result["found"] if t) or "none"
            return {
                **result,
                "stage": "spec",
                "error": f"{module} declares no provider {request['provider_type']!r}; it declares: {found}",
            }
        result["spec"] = spec
        spec = {**spec, **{k: v for k, v in (request.get("overrides") or {}).items()}}
        module = spec.get("module") or module
    if not request.get("check_import", True):
        return result
    config_class = (spec or {}).get("config_class") or request.get("config_class")
    kind = request["provider_type"].partition("::")[0]
    try:
        imported = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - reported with its cause
        return {**result, "stage": "import", "error": _describe(exc)}
    if config_class:
        try:
            cls = _import_attr(config_class)
        except Exception as exc:  # noqa: BLE001 - reported with its cause
            return {**result, "stage": "config", "error": f"config_class {config_class!r}: {_describe(exc)}"}
        if request.get("config_file"):  # hostel check --deep: the entry's config, validated as the worker will
            with open(request["config_file"]) as stream:
                config = json.load(stream)
            result["unknown_keys"] = unknown_keys(cls, config)
            error = validate_config(cls, config)
            if error is not None:
                return {**result, "stage": "config", "error": f"invalid config for {config_class}: {error}"}
    factory = "get_adapter_impl" if kind == "remote" else "get_provider_impl"
    if not callable(getattr(imported, factory, None)):
        return {**result, "stage": "factory", "error": f"module {module!r} has no {factory}()"}
    importlib.import_module("hostel_sdk.worker")  # and what the worker itself imports (grpc.aio …)
    compile_imported()
    return result


def validate_config(cls: Any, config: dict[str, Any]) -> str | None:
    """Why ``config`` does not build ``cls`` (a pydantic model or a dataclass), or None."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(cls).validate_python(config)
    except ValidationError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a class pydantic cannot build from a mapping, say why
        return _describe(exc)
    return None


def unknown_keys(cls: Any, config: dict[str, Any]) -> list[list[str]]:
    """``[key, closest known key or ""]`` for each top-level key of ``config`` that ``cls`` has no field for (a
    pydantic model that ignores extras would drop it silently)."""
    import dataclasses
    import difflib

    fields: set[str] = set()
    if hasattr(cls, "model_fields"):
        for name, info in cls.model_fields.items():
            fields.update(n for n in (name, getattr(info, "alias", None)) if isinstance(n, str))
    elif dataclasses.is_dataclass(cls):
        fields.update(f.name for f in dataclasses.fields(cls))
    else:
        return []
    return [
        [key, next(iter(difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.75)), "")]
        for key in config
        if key not in fields
    ]


def write_env_bytecode_on_import() -> bool:
    """From now on, an import that compiles a module of this env also writes its bytecode (and nothing
    outside the env is written), whatever PYTHONDONTWRITEBYTECODE says; False where this Python's import
    system lacks the hook, and then ``compile_imported`` does it all afterwards.

    Compiling once while importing instead of again after the imports took this probe from ~620 to
    ~430 ms in a small env here (docs/performance.md).
    """
    loader = importlib.machinery.SourceFileLoader
    cache = getattr(loader, "_cache_bytecode", None)  # private, but in every CPython from 3.4 to 3.13
    if cache is None:
        return False
    prefix = os.path.join(sys.prefix, "")

    def cache_in_env(self: Any, source_path: str, bytecode_path: str, data: bytes) -> Any:
        if source_path.startswith(prefix):
            return cache(self, source_path, bytecode_path, data)
        return None

    loader._cache_bytecode = cache_in_env  # type: ignore[attr-defined]
    sys.dont_write_bytecode = False
    return True


def compile_imported() -> int:
    """Write bytecode for every module imported so far that lives in this env and has none; return how many.

    A worker would otherwise compile each of them at every start wherever PYTHONDONTWRITEBYTECODE is set
    (compiling them is most of a cold start). Only what a start imports, not the whole env (which for big
    packages takes minutes), and nothing outside the env is written.
    """
    prefix = os.path.join(sys.prefix, "")
    written = 0
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None)
        if not source or not source.endswith(".py") or not source.startswith(prefix):
            continue
        if os.path.exists(importlib.util.cache_from_source(source)):
            continue
        with contextlib.suppress(OSError, py_compile.PyCompileError):
            py_compile.compile(source, doraise=True)
            written += 1
    return written


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def main() -> int:
    """Entry point: the request as argv[1], the result as JSON on stdout (provider output goes to stderr)."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    write_env_bytecode_on_import()
    result = probe(json.loads(sys.argv[1]))
    real_stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
