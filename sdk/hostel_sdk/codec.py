"""JSON across the process boundary, never pickle.

Values are dumped with pydantic's JSON rules (models, dataclasses, enums, datetimes, UUIDs …) and
rebuilt on the receiving side from the type hints of the method being called.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from hostel_sdk import _blobs
from hostel_sdk._model_args import MODEL_KEY, has_models, model_json, untag

__all__ = [
    "LONG_TEXT", "MODEL_KEY", "ArgumentError", "AsSent", "MethodBinder", "as_sent", "decode_text", "dumps",
    "encode_text", "has_models", "is_long_text", "json_rebuilder", "lenient_json_rebuilder", "loads", "rebuild",
    "split_text", "untag",
]  # fmt: skip

logger = logging.getLogger(__name__)


def _jsonable(value: Any, blobs: _blobs.Outbox | None = None, as_arguments: bool = False) -> Any:
    """What JSON cannot hold natively, as JSON values: pydantic models (``as_arguments``: as ``model_json`` sends
    them), dataclasses, enums, datetimes ...; a blob (bytes, a file, a ``Response``) as
    its marker when ``blobs`` takes it, else bytes as UTF-8 text (as pydantic writes them). ``TypeError`` naming
    what cannot be."""
    if isinstance(value, BaseModel):
        if as_arguments:
            return model_json(value)
    elif _blobs.is_blob(value):
        if blobs is None and isinstance(value, (bytes, bytearray, memoryview)):
            return to_jsonable_python(bytes(value))
        if blobs is None:
            raise TypeError(
                f"cannot send a {type(value).__qualname__} here: bytes, files and responses cross only as the "
                "arguments and results of a call, not inside other values or stream items"
            )
        return blobs.marker(value)
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        cls = type(value)
        raise TypeError(f"cannot encode a {cls.__module__}.{cls.__qualname__} as JSON") from None


_decoder = json.JSONDecoder()


def _model_dumps(model: BaseModel) -> bytes | None:
    """A model as ``dumps`` writes it (``_jsonable``: its own serializer, JSON mode, by alias), in one step instead
    of a Python value that is then encoded: half the time for a stream's chunk. ``None`` if it cannot be: the
    general path then says why."""
    try:
        return model.__pydantic_serializer__.to_json(model, by_alias=True, warnings=False)
    except PydanticSerializationError:
        return None


def _standard_dumps(value: Any, default: Callable[[Any], Any]) -> bytes:
    return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode(value).encode()


try:  # orjson: 2-7x faster on both sides of every call; the standard library if it is missing
    import orjson

    _ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME  # datetimes as pydantic writes them

    def dumps(value: Any, blobs: _blobs.Outbox | None = None, *, as_arguments: bool = False) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON; pydantic models and dataclasses are dumped in JSON mode (with
        ``as_arguments``, as a call's arguments: the fields that were set, as the receiver's model must have them,
        and the class of a model in a field its class does not type); with
        ``blobs``, bytes, files and responses become markers whose sources ``blobs`` keeps (``hostel_sdk._blobs``).
        ``TypeError`` for a value that cannot be encoded."""
        if not as_arguments and isinstance(value, BaseModel):
            data = _model_dumps(value)
            if data is not None:
                return data
        default = (
            _jsonable
            if blobs is None and not as_arguments
            else functools.partial(_jsonable, blobs=blobs, as_arguments=as_arguments)
        )
        try:
            return orjson.dumps(value, default=default, option=_ORJSON_OPTIONS)
        except TypeError:  # e.g. an integer beyond 64 bits: the standard library takes it
            return _standard_dumps(value, default)

    def loads(data: bytes | memoryview) -> Any:
        """Decode UTF-8 JSON; empty input is ``None``."""
        return orjson.loads(data) if data else None

except ImportError:  # pragma: no cover - orjson is a hostel-sdk requirement; this keeps the SDK usable without

    def dumps(value: Any, blobs: _blobs.Outbox | None = None, *, as_arguments: bool = False) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON; pydantic models and dataclasses are dumped in JSON mode."""
        return _standard_dumps(value, functools.partial(_jsonable, blobs=blobs, as_arguments=as_arguments))

    def loads(data: bytes | memoryview) -> Any:
        """Decode UTF-8 JSON; empty input is ``None``."""
        return _decoder.decode(bytes(data).decode()) if data else None


# Strings at least this long travel as UTF-8 bytes beside the JSON (CallRequest.kwargs_text, CallReply.value_text):
# JSON-escaping and parsing megabytes costs more than the transfer itself.
LONG_TEXT = 1 << 16


def is_long_text(value: Any) -> bool:
    """Whether ``value`` travels as UTF-8 bytes beside the JSON (a string of ``LONG_TEXT`` or more)."""
    return type(value) is str and len(value) >= LONG_TEXT


def split_text(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``kwargs`` without its long string values, and those values as UTF-8 (lone surrogates kept)."""
    long = [key for key, value in kwargs.items() if is_long_text(value)]
    if not long:
        return kwargs, {}
    rest = {key: value for key, value in kwargs.items() if key not in long}
    return rest, {key: encode_text(kwargs[key]) for key in long}


def encode_text(text: str) -> bytes:
    """A string as UTF-8 bytes, lone surrogates included (Python strings may hold them)."""
    return text.encode("utf-8", "surrogatepass")


def decode_text(data: bytes | memoryview) -> str:
    """The inverse of ``encode_text``."""
    return str(data, "utf-8", "surrogatepass")


class ArgumentError(ValueError):
    """The arguments of a call do not fit the method's signature or type hints."""


def _is_plain(annotation: Any) -> bool:
    return annotation in (inspect.Parameter.empty, Any, object) or isinstance(annotation, str)


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    if _is_plain(annotation):
        return None
    try:
        return TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - an exotic hint just means "pass the JSON value through"
        logger.debug("no TypeAdapter for %r; passing values through", annotation)
        return None


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable forward refs: fall back to raw annotations
        return dict(getattr(func, "__annotations__", {}))


@dataclass(frozen=True)
class MethodBinder:
    """Binds JSON arguments to one method, rebuilding each from its type hint. Built once per method."""

    name: str
    signature: inspect.Signature
    adapters: dict[str, TypeAdapter[Any]]
    streams: bool
    keyword_names: frozenset[str] = frozenset()  # parameters that may be passed by keyword
    required: frozenset[str] = frozenset()  # parameters without a default
    var_keyword: bool = False  # the method takes **kwargs
    request_param: str | None = None  # the one parameter of a method that takes a whole request model
    annotations: dict[str, Any] = dataclasses.field(default_factory=dict)  # each parameter's type hint
    positional: tuple[str, ...] = ()  # parameters that may be passed by position, in order
    # Parameters hinted as a pydantic model that validating returns as is when it is one already (one built from
    # its tag as the message was decoded): no second pass through its validator.
    built_models: dict[str, type] = dataclasses.field(default_factory=dict)

    @classmethod
    def for_callable(cls, name: str, func: Callable[..., Any]) -> MethodBinder:
        """Inspect ``func`` once: its signature, a TypeAdapter per annotated parameter."""
        signature = inspect.signature(func)
        hints = _hints(func)
        params = signature.parameters.values()
        annotations = {p.name: hints.get(p.name, p.annotation) for p in params}
        adapters: dict[str, TypeAdapter[Any]] = {}
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            adapter = _adapter(annotations[param.name])
            if adapter is not None:
                adapters[param.name] = adapter
        return cls(
            name=name,
            signature=signature,
            adapters=adapters,
            streams=inspect.isasyncgenfunction(func),
            keyword_names=frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)),
            required=frozenset(
                p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ),
            var_keyword=any(p.kind == p.VAR_KEYWORD for p in params),
            request_param=_request_param(signature, hints),
            annotations=annotations,
            positional=tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)),
            built_models={
                pname: hint
                for pname, hint in annotations.items()
                if isinstance(hint, type)
                and issubclass(hint, BaseModel)
                and hint.model_config.get("revalidate_instances", "never") == "never"
            },
        )

    def annotation(self, position: int | str) -> Any:
        """The type hint of a parameter, by name or position (``None`` if it has none)."""
        if isinstance(position, int):
            if position >= len(self.positional):
                return None
            position = self.positional[position]
        found = self.annotations.get(position)
        return None if found is inspect.Parameter.empty else found

    def _rebuild(self, pname: str, value: Any) -> Any:
        if type(value) is self.built_models.get(pname):
            return value
        adapter = self.adapters.get(pname)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise ArgumentError(f"{self.name}(): argument {pname!r}: {exc}") from None

    def _spread(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """A whole request object sent to a method that takes its fields as parameters (an older Llama Stack
        provider called by a newer server), as keyword arguments; ``None`` when it is not one."""
        first = next(iter(self.signature.parameters), None)
        if first is None or first not in request:
            return None
        fields = {k: v for k, v in request.items() if v is not None or k in self.keyword_names}
        if not self.required <= fields.keys() or not (self.var_keyword or fields.keys() <= self.keyword_names):
            return None
        return fields

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Bind and rebuild arguments; raise ``ArgumentError`` with pydantic's message when they do not fit."""
        if self.request_param is not None and not args and self.request_param not in kwargs:
            # Newer Llama Stack methods take one request model (``openai_chat_completion(params)``); callers
            # send its fields as keyword arguments, as with older versions: wrap them.
            kwargs = {self.request_param: kwargs}
        elif self.request_param is None and not kwargs and len(args) == 1 and isinstance(args[0], dict):
            spread = self._spread(args[0])
            if spread is not None:
                args, kwargs = [], spread
        names = kwargs.keys()
        if not args and self.required <= names and (self.var_keyword or names <= self.keyword_names):
            # The common cases, keyword arguments that fit or positional ones that do: no Signature.bind on the
            # hot path.
            if not self.adapters:
                return [], kwargs
            return [], {k: self._rebuild(k, v) for k, v in kwargs.items()}
        if not kwargs and len(args) <= len(self.positional) and self.required <= set(self.positional[: len(args)]):
            return [self._rebuild(name, value) for name, value in zip(self.positional, args, strict=False)], {}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{self.name}(): {exc}") from None
        for pname, value in bound.arguments.items():
            bound.arguments[pname] = self._rebuild(pname, value)
        return list(bound.args), dict(bound.kwargs)


def _request_param(signature: inspect.Signature, hints: dict[str, Any]) -> str | None:
    """The name of a method's only parameter when it is a pydantic model (a whole request object)."""
    params = [p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(params) != 1:
        return None
    annotation = hints.get(params[0].name, params[0].annotation)
    return params[0].name if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


T = typing.TypeVar("T")


def _memo(cache: dict[Any, T], annotation: Any, make: Callable[[Any], T]) -> T:
    """``make(annotation)``, kept in ``cache`` (an unhashable annotation is made each time)."""
    try:
        return cache[annotation]
    except KeyError:
        made = cache[annotation] = make(annotation)
        return made
    except TypeError:
        return make(annotation)


_ADAPTERS: dict[Any, TypeAdapter[Any] | None] = {}
_JSON_REBUILDERS: dict[Any, Callable[[bytes], Any]] = {}


def rebuild(value: Any, annotation: Any) -> Any:
    """Rebuild a JSON value into ``annotation`` (e.g. a pydantic model); plain values pass through."""
    adapter = _memo(_ADAPTERS, annotation, _adapter)
    return value if adapter is None else adapter.validate_python(value)


def json_rebuilder(annotation: Any) -> Callable[[bytes], Any]:
    """What makes a value of ``annotation`` from its JSON in one step, as ``rebuild(loads(data), annotation)`` does in
    two: validated straight from the JSON where ``annotation`` needs rebuilding (``pydantic.ValidationError``, a
    ``ValueError``, if it does not fit), else just decoded; ``null`` stays ``None``. Meant to be taken once and called
    per item (a stream's)."""
    return _memo(_JSON_REBUILDERS, annotation, _json_rebuilder)


def lenient_json_rebuilder(
    annotation: Any, on_unfit: Callable[[ValueError], None] | None = None
) -> Callable[[bytes], Any]:
    """``json_rebuilder(annotation)``, but JSON that does not fit it (another version's shape) is decoded as sent
    (``as_sent``) instead of raising, and ``on_unfit`` told why; ``annotation`` ``None``: everything as sent."""
    if annotation is None:
        return _as_sent_json
    rebuild = json_rebuilder(annotation)

    def decode(data: bytes) -> Any:
        try:
            return rebuild(data)
        except ValueError as exc:  # a ValidationError
            if on_unfit is not None:
                on_unfit(exc)
            return _as_sent_json(data)

    return decode


def _as_sent_json(data: bytes) -> Any:
    return as_sent(loads(data))


def _json_rebuilder(annotation: Any) -> Callable[[bytes], Any]:
    if _memo(_ADAPTERS, annotation, _adapter) is None:
        return loads
    try:  # nullable: pydantic takes null as None itself, and reports what else does not fit as the model's own errors
        return TypeAdapter(typing.Optional[annotation]).validate_json  # noqa: UP045 - any type form, not just a class
    except Exception:  # noqa: BLE001 - an exotic hint just means "pass the JSON value through"
        return loads


class AsSent(dict[str, Any]):
    """A value that does not fit the type its receiver expects (a Llama Stack server's result type, or a bridged
    provider's, for what its deps calls return), as it was sent: the JSON object it is, whose keys are also its
    attributes, at any depth, which the receiver may read and set (OGX stamps each completion chunk's ``model``),
    and which dumps as that JSON (``model_dump_json``, as a model would). In process the receiver gets the sender's
    own object (an OpenAI SDK ``Completion`` whose chunks have no ``finish_reason`` yet); a plain ``dict`` has no
    attributes, and code that took one as a ``dict`` still can."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def model_dump(self, **_: Any) -> dict[str, Any]:
        """The JSON object, as a dict."""
        return loads(dumps(self))  # type: ignore[no-any-return]

    def model_dump_json(self, **_: Any) -> str:
        """The JSON, as text."""
        return dumps(self).decode()


def as_sent(value: Any) -> Any:
    """Decoded JSON with each object in it an ``AsSent``."""
    if isinstance(value, dict):
        return AsSent((key, as_sent(item)) for key, item in value.items())
    if isinstance(value, list):
        return [as_sent(item) for item in value]
    return value
