"""Turns a provider spec and config into the provider object, stage by stage.

Each stage raises ``StartError`` with the stage name the host reports (``import``, ``config``, ``factory``).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from hostel_sdk import _llama_stack, _storage, _test_recording
from hostel_sdk._deps import HostClient, build_deps, inject_stores
from hostel_sdk._exposure import exposed_methods
from hostel_sdk._handshake import Stage
from hostel_sdk._start import StartRequest


class StartError(Exception):
    """The provider could not be brought up; ``stage`` says where."""

    def __init__(self, stage: Stage, message: str) -> None:
        super().__init__(message)
        self.stage: Stage = stage
        self.message = message


class LoadRequest(Protocol):
    """What the loader reads of a start request."""

    @property
    def provider_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def module(self) -> str: ...
    @property
    def config_class(self) -> str | None: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def policy(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class Loaded:
    """A provider built as a worker builds it: the object, its provider-data validator, its callable methods."""

    impl: Any
    validator: Callable[[Any], Any] | None
    methods: dict[str, Callable[..., Any]]
    recording: _test_recording.Recording | None = None  # OGX's test recorder, when its environment turns it on


async def load_provider(request: StartRequest, host_client: HostClient | None) -> Loaded:
    """Import, configure and build the provider, inject its stores, check its API protocol, annotate it as
    Llama Stack would: what every worker does, and what ``hostel_sdk.testing.serve`` does too."""
    module = import_module(request.module)
    if request.storage is not None:
        register_backends(request.storage)
    recording = start_test_recording()
    config = build_config(request)
    validator = load_validator(request.provider_data_validator)
    impl = await create_impl(request, module, config, build_deps(host_client, request.deps, request.deps_methods))
    inject_stores(impl, host_client)
    missing = _llama_stack.missing_methods(impl, request.api)
    if missing:
        raise StartError(
            "protocol",
            f"{type(impl).__name__} lacks methods of the {request.api} API protocol of its Llama Stack: "
            f"{', '.join(missing)}; the provider does not fit this Llama Stack version (pin another with constraints)",
        )
    _llama_stack.annotate(
        impl,
        provider_id=request.provider_id,
        provider_type=request.provider_type,
        api=request.api,
        validator=request.provider_data_validator,
    )
    return Loaded(impl, validator, exposed_methods(impl, api=request.api, expose=request.expose), recording)


def import_object(path: str, *, stage: Stage, what: str) -> Any:
    """Import ``pkg.mod.Attr`` (the longest importable module prefix, then attributes)."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # that prefix is not a module: try a shorter one
            raise StartError(stage, f"importing {what} {path!r} failed: {_describe(exc)}") from exc
        except Exception as exc:
            raise StartError(stage, f"importing {what} {path!r} failed: {_describe(exc)}") from exc
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise StartError(
                stage, f"{what} {path!r}: module {module_name!r} has no attribute {'.'.join(parts[cut:])!r}"
            ) from None
        return obj
    raise StartError(stage, f"{what} {path!r} cannot be imported: no module of that path is installed")


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - unresolvable annotations: the rules go as JSON
        return {}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def import_module(name: str) -> Any:
    """Import the provider's module (stage ``import``)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:
        hint = ""
        if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name != name.split(".", maxsplit=1)[0]:
            hint = f"; add the package that provides {exc.name!r} to the provider's pip_packages or fix its constraints"
        elif isinstance(exc, ModuleNotFoundError):
            hint = "; add the package that provides it to pip_packages"
        raise StartError("import", f"cannot import module {name!r}: {_describe(exc)}{hint}") from exc


def start_test_recording() -> _test_recording.Recording | None:
    """OGX's test recorder, if the environment turns it on (stage ``config``): ``hostel_sdk._test_recording``."""
    try:
        return _test_recording.start()
    except Exception as exc:  # a bad recording setting fails the start, named
        raise StartError("config", f"turning on the test recording failed: {_describe(exc)}") from exc


def register_backends(storage: Mapping[str, Any]) -> None:
    """Register the server's storage backends (stage ``config``): ``hostel_sdk._storage``."""
    try:
        _storage.register_storage(storage)
    except Exception as exc:
        raise StartError("config", f"registering the storage backends failed: {_describe(exc)}") from exc


def build_config(request: LoadRequest) -> Any:
    """Build the config object with a pydantic TypeAdapter (models and dataclasses alike)."""
    if not request.config_class:
        return dict(request.config)
    cls = import_object(request.config_class, stage="config", what="config_class")
    try:
        return TypeAdapter(cls).validate_python(dict(request.config))
    except ValidationError as exc:
        raise StartError("config", f"invalid config for {request.config_class}: {exc}") from exc
    except Exception as exc:
        raise StartError("config", f"building {request.config_class} failed: {_describe(exc)}") from exc


def _factory_args(
    factory: Callable[..., Any], config: Any, deps: Mapping[Any, Any], policy: tuple[Any, ...] = ()
) -> list[Any]:
    """Pass what the factory's signature asks for: (config), (config, deps), (config, deps, policy); the policy's
    rules rebuilt as the type the factory's annotation names (OGX's ``list[AccessRule]``)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return [config, deps]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return [config, deps]
    rules: Any = list(policy)
    if len(positional) > 2 and rules:
        hint = _hints(factory).get(positional[2].name)
        if hint is not None:
            try:
                rules = TypeAdapter(hint).validate_python(rules)
            except ValidationError as exc:
                raise StartError("config", f"the server's access policy does not fit {hint}: {exc}") from exc
    args: list[Any] = [config, deps, rules][: len(positional)]
    while len(args) < len(positional) and positional[len(args)].default is inspect.Parameter.empty:
        args.append(None)
    return args[: max(1, len(positional))]


async def create_impl(request: LoadRequest, module: Any, config: Any, deps: Mapping[Any, Any]) -> Any:
    """Await the module's factory: ``get_adapter_impl`` (remote) or ``get_provider_impl`` (inline)."""
    name = "get_adapter_impl" if request.kind == "remote" else "get_provider_impl"
    factory = getattr(module, name, None)
    if factory is None:
        raise StartError(
            "factory", f"module {request.module!r} has no {name}(); a {request.kind} provider must define it"
        )
    args = _factory_args(factory, config, deps, request.policy)
    try:
        impl = factory(*args)
        if inspect.isawaitable(impl):
            impl = await impl
    except Exception as exc:
        raise StartError("factory", f"{request.module}.{name}() raised {_describe(exc)}") from exc
    if impl is None:
        raise StartError("factory", f"{request.module}.{name}() returned None; it must return the provider object")
    return impl


def load_validator(path: str | None) -> Callable[[Any], Any] | None:
    """The provider-data validator, as a callable that builds it from a dict."""
    if not path:
        return None
    cls = import_object(path, stage="config", what="provider_data_validator")
    adapter: TypeAdapter[Any] = TypeAdapter(cls)
    return adapter.validate_python
