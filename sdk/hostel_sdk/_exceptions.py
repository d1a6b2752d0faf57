"""Exceptions across the process boundary: what the raising side says of one, and the same type again on the
other side, so that code which catches or maps exceptions by type (a server's error handler, a provider's
``except``) behaves as it would in process.

Only classes of modules the receiving process has already imported are used: a peer's message never makes
this process import anything.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

from hostel_sdk import codec

# The range of HTTP statuses an exception's ``status_code`` may carry across.
_HTTP_STATUSES = range(100, 600)
# The most an exception's attributes may take on the wire (a larger set crosses without them).
MAX_ATTRIBUTES_BYTES = 64 * 1024
# Attributes that cross otherwise (the message, the status) or mean nothing in another process.
_NOT_ATTRIBUTES = frozenset({"args", "status_code"})


def qualified_name(cls: type) -> str:
    """``ValueError`` for builtins, else ``module.QualName``."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException) -> tuple[list[str], int]:
    """The qualified names of ``exc``'s base classes (nearest first, without ``object``) and its HTTP
    ``status_code`` attribute (0 when it has none)."""
    bases = [qualified_name(cls) for cls in type(exc).__mro__[1:] if cls is not object]
    status = getattr(exc, "status_code", None)
    plausible = isinstance(status, int) and not isinstance(status, bool) and status in _HTTP_STATUSES
    return bases, int(status) if plausible else 0  # type: ignore[arg-type]


def attributes(exc: BaseException) -> bytes:
    """``exc``'s own public attributes whose values are JSON (an HTTP client error's ``body``, ``code``, ``param``;
    not its ``response`` object), as one JSON object, or ``b""`` for none or more than ``MAX_ATTRIBUTES_BYTES``."""
    found: dict[str, Any] = {}
    for name, value in getattr(exc, "__dict__", {}).items():
        if not isinstance(name, str) or name.startswith("_") or name in _NOT_ATTRIBUTES:
            continue
        if value is None or isinstance(value, (str, int, float, bool, list, dict)):
            try:
                codec.dumps(value)
            except (TypeError, ValueError):
                continue
            found[name] = value
    if not found:
        return b""
    data = codec.dumps(found)
    return data if len(data) <= MAX_ATTRIBUTES_BYTES else b""


def _known(name: str) -> type[Exception] | None:
    """The exception class called ``name`` if this process has it: a builtin, or from a module already imported."""
    module_name, _, qualname = name.rpartition(".")
    found: Any = builtins if not module_name else sys.modules.get(module_name)
    if found is None and "." in module_name:  # a class nested in a class: ``module.Outer.Inner``
        module_name, _, outer = module_name.rpartition(".")
        found = getattr(sys.modules.get(module_name), outer, None)
    for part in qualname.split("."):
        found = getattr(found, part, None) if found is not None else None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


_STAND_INS: dict[tuple[str, type], type[Exception]] = {}


def _stand_in(type_name: str, base: type[Exception]) -> type[Exception]:
    """A subclass of ``base`` named like the remote type, whose ``str()`` is the message it was made with (the
    remote type's own ``__init__`` and ``__str__`` may need attributes that did not cross)."""
    key = (type_name, base)
    cls = _STAND_INS.get(key)
    if cls is None:
        module, _, qualname = type_name.rpartition(".")
        namespace = {
            "__module__": module or "builtins",
            "__qualname__": qualname,
            "__init__": lambda self, message="": Exception.__init__(self, message),
            "__str__": lambda self: str(self.args[0]) if self.args else "",
        }
        cls = _STAND_INS[key] = type(qualname.rpartition(".")[2], (base,), namespace)
    return cls


def _nearest(type_name: str, bases: list[str] | tuple[str, ...]) -> type[Exception]:
    for name in (type_name, *bases):
        cls = _known(name)
        if cls is not None:
            return cls
    return Exception


def rebuild(
    type_name: str,
    bases: list[str] | tuple[str, ...],
    message: str,
    *,
    status_code: int = 0,
    attributes_json: bytes = b"",
) -> tuple[Exception, bool]:
    """The remote exception as an instance of its own type when this process has it, else of a stand-in subclass of
    the nearest base it has (``Exception`` at worst); ``status_code`` is set on it when the remote one had one, and
    the attributes it carried (``attributes``) where its class lets them be set.

    Returns the exception and whether a class nearer than ``Exception`` itself was found.
    """
    cls = _nearest(type_name, bases)
    exc: Exception
    if cls.__module__ == "builtins" and cls.__qualname__ == type_name:
        try:
            exc = cls(message)
        except Exception:  # noqa: BLE001 - a builtin that takes other arguments: a stand-in takes the message
            exc = _stand_in(type_name, cls)(message)
    else:
        exc = _stand_in(type_name, cls)(message)
    if status_code:
        exc.status_code = status_code  # type: ignore[attr-defined]
    if attributes_json:
        _set_attributes(exc, attributes_json)
    return exc, cls is not Exception


def _set_attributes(exc: Exception, data: bytes) -> None:
    try:
        found = codec.loads(data)
    except ValueError:
        return
    if not isinstance(found, dict):
        return
    for name, value in found.items():
        if isinstance(name, str) and not name.startswith("_") and name not in _NOT_ATTRIBUTES:
            try:
                setattr(exc, name, value)
            except (AttributeError, TypeError):  # a read-only property of its class: what the class says stands
                continue
