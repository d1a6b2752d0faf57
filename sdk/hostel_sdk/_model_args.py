"""Pydantic models as a call's arguments travel: the fields that were set (and those the model's own dump leaves out,
when set), and a model where its field's type does not name it tagged with its class, so the receiver rebuilds the
same model. ``hostel_sdk.codec`` writes and reads arguments with this."""

from __future__ import annotations

import datetime
import enum
import functools
import logging
import sys
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

logger = logging.getLogger(__name__)


def _literal(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Literal or any(_literal(a) for a in typing.get_args(annotation))


# A model inside a list or dict, or in a field typed ``Any``, travels as ``{"$hostel_model": "module.Class", "value":
# {...}}`` in arguments, so the receiver rebuilds it as that class: its own class may not say (``dict[str, Any]``),
# or say wrong (OGX's CompoundFilter declares list[Filter] but validates list[Any]).
MODEL_KEY = "$hostel_model"


def _untyped(annotation: Any) -> bool:
    """Whether a field so annotated may hold a model its annotation does not name (``Any`` in it somewhere)."""
    if annotation is Any or annotation is object:
        return True
    return any(_untyped(arg) for arg in typing.get_args(annotation))


_CONTAINERS = (dict, list, tuple)
# Annotations that never hold a model: a field typed only with these (``str | None``, ``list[float]``) is left to
# pydantic's dump without being looked into.
_SCALARS = (str, int, float, bool, bytes, type(None), datetime.date, datetime.time, datetime.timedelta, enum.Enum)


def _may_hold_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _SCALARS):
        return False
    if typing.get_origin(annotation) is typing.Literal:
        return False
    args = typing.get_args(annotation)
    if not args:  # a model, Any, a bare list or dict, a class pydantic takes as it is: it may
        return annotation not in (type(None), None)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _may_hold_model(args[0])
    return any(_may_hold_model(arg) for arg in args if arg is not Ellipsis)


@dataclass(frozen=True)
class _Shape:
    """What sending a model class as an argument needs to know of it, worked out once per class."""

    droppable: frozenset[str]  # left out when nobody set them: all fields but those typed ``Literal``
    deep: tuple[tuple[str, str, bool], ...]  # (name, JSON key, typed ``Any``) of fields that may hold a model
    plain: bool  # no model serializer of its own: its JSON keys are its fields'
    # (name, JSON key) of fields the model's own dump leaves out (``Field(exclude=True)``: OGX's MCP tool keeps its
    # ``authorization`` so), which a provider still reads from its argument in process.
    hidden: tuple[tuple[str, str], ...] = ()


@functools.cache
def _shape(cls: type[BaseModel]) -> _Shape:
    fields = cls.__pydantic_fields__
    decorators = getattr(cls, "__pydantic_decorators__", None)
    return _Shape(
        # A Literal field is kept, set or not: it may be the discriminator the receiver picks the model by.
        droppable=frozenset(name for name, field in fields.items() if not _literal(field.annotation)),
        deep=tuple(
            (name, field.serialization_alias or field.alias or name, _untyped(field.annotation))
            for name, field in fields.items()
            if _may_hold_model(field.annotation) and not field.exclude
        ),
        plain=not (decorators is not None and decorators.model_serializers),
        hidden=tuple((name, field.serialization_alias or field.alias or name) for name, field in fields.items()
                     if field.exclude is True),
    )  # fmt: skip


def _holds_model(value: Any) -> bool:
    if isinstance(value, BaseModel):
        return True
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return any(isinstance(item, (BaseModel, *_CONTAINERS)) and _holds_model(item) for item in items)


def model_json(model: BaseModel) -> dict[str, Any]:
    """A model as an argument travels: the fields that were set, so the receiver's model has the same fields set as
    the sender's (a request model may refuse an explicit null, and a server may send on only the fields that were
    set), and a model inside a list or dict, or in a field typed ``Any``, tagged with its class (at any depth).

    One dump by pydantic of the fields that hold no model; each field that holds one is written by this function
    instead (the model's own fields that were set, or tagged), not dumped twice."""
    shape = _shape(type(model))
    if not shape.plain:
        return _model_json_dumped(model)
    fields_set = model.model_fields_set
    exclude = set(shape.droppable - fields_set)
    written: dict[str, Any] = {}
    for name, key, untyped in shape.deep:
        if name not in fields_set:
            continue
        value = getattr(model, name, None)
        if isinstance(value, BaseModel):
            written[key] = _tagged(value) if untyped else model_json(value)
        elif isinstance(value, _CONTAINERS) and _holds_model(value):
            written[key] = _tagged(value)
        else:
            continue
        exclude.add(name)
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude=exclude or None)
    if written:
        data.update(written)
    if shape.hidden:
        _write_hidden(model, shape, data)
    return data


def _write_hidden(model: BaseModel, shape: _Shape, data: dict[str, Any]) -> None:
    """The fields of ``model`` that its dump leaves out and someone set, written into ``data`` as arguments travel."""
    for name, key in shape.hidden:
        if name in model.model_fields_set:
            value = getattr(model, name, None)
            data[key] = model_json(value) if isinstance(value, BaseModel) else _tagged(value)


def _model_json_dumped(model: BaseModel) -> dict[str, Any]:
    """``model_json`` for a model with a serializer of its own, whose keys may not be its fields': dumped by it
    (told which fields nobody set, at any depth), then each model it holds in a field it wrote written over."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude=_unset(model) or None)
    shape = _shape(type(model))
    for name, key, untyped in shape.deep:
        value = getattr(model, name, None)
        if name not in model.model_fields_set or key not in data or not isinstance(value, (BaseModel, *_CONTAINERS)):
            continue
        if isinstance(value, BaseModel):
            data[key] = _tagged(value) if untyped else model_json(value)
        elif _holds_model(value):
            data[key] = _tagged(value)
    if shape.hidden:
        _write_hidden(model, shape, data)
    return data


def _unset(value: Any) -> dict[Any, Any]:
    """A pydantic ``exclude`` spec of the fields of ``value`` (and of the models inside it) that nobody set."""
    spec: dict[Any, Any] = {}
    if isinstance(value, BaseModel):
        fields_set = value.model_fields_set
        spec = dict.fromkeys(_shape(type(value)).droppable - fields_set, True)
        for name in fields_set & type(value).__pydantic_fields__.keys():
            inner = getattr(value, name, None)
            if isinstance(inner, (BaseModel, *_CONTAINERS)) and (inner_spec := _unset(inner)):
                spec[name] = inner_spec
    elif isinstance(value, (list, tuple)):
        spec = {i: inner for i, item in enumerate(value) if (inner := _unset(item))}
    elif isinstance(value, dict):
        spec = {key: inner for key, item in value.items() if (inner := _unset(item))}
    return spec


def _tagged(value: Any) -> Any:
    if isinstance(value, BaseModel):
        cls = type(value)
        return {MODEL_KEY: f"{cls.__module__}.{cls.__qualname__}", "value": model_json(value)}
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tagged(item) for item in value]
    return to_jsonable_python(value)


def has_models(data: bytes | memoryview) -> bool:
    """Whether JSON arguments may hold tagged models (a cheap test before ``untag``)."""
    return b'"$hostel_model"' in (data if isinstance(data, bytes) else bytes(data))


def untag(value: Any) -> Any:
    """Arguments with each tagged model rebuilt as its class, where this process has imported it (a peer never makes
    this process import anything), else left its plain value."""
    if isinstance(value, dict):
        if len(value) == 2 and MODEL_KEY in value and "value" in value:
            inner = untag(value["value"])
            cls = _imported_model(str(value[MODEL_KEY]))
            if cls is not None:
                try:
                    return cls.model_validate(inner)
                except ValidationError:
                    logger.debug("tagged %s did not validate; passed as its plain value", value[MODEL_KEY])
            return inner
        return {key: untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untag(item) for item in value]
    return value


# Tagged class names found: (its module, the class), good while that module is the one imported under its name.
_FOUND_MODELS: dict[str, tuple[Any, type[BaseModel]]] = {}


def _imported_model(name: str) -> type[BaseModel] | None:
    module_name, _, qualname = name.rpartition(".")
    module = sys.modules.get(module_name)
    known = _FOUND_MODELS.get(name)
    if known is not None and known[0] is module:
        return known[1]
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None) if found is not None else None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        return None
    _FOUND_MODELS[name] = (module, found)
    return found
