"""Exceptions cross the boundary as their own type where the receiving process has it, else as the nearest base."""

from __future__ import annotations

import sys

import pytest

from hostel_sdk._exceptions import MAX_ATTRIBUTES_BYTES, attributes, describe, qualified_name, rebuild


class NotFoundError(LookupError):
    status_code = 404


class InvalidError(ValueError):
    def __init__(self, param: str, value: object) -> None:  # needs arguments the other side does not have
        super().__init__(f"{param}={value!r} is invalid")
        self.param = param

    def __str__(self) -> str:
        return f"bad {self.param}"  # reads an attribute that does not cross


def test_describe_names_the_bases_and_an_http_status() -> None:
    assert describe(NotFoundError("x")) == ([qualified_name(LookupError), "Exception", "BaseException"], 404)
    assert describe(ValueError("x")) == (["Exception", "BaseException"], 0)
    odd = ValueError("x")
    odd.status_code = True  # type: ignore[attr-defined]  # not an HTTP status
    assert describe(odd)[1] == 0


class ApiStatusError(Exception):
    """Like the OpenAI SDK's errors: what code reads is on attributes (``body``), beside objects that cannot cross."""

    def __init__(self, message: str, *, body: object, response: object) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.code = body.get("code") if isinstance(body, dict) else None
        self.response = response
        self.status_code = 400
        self._private = "kept here"

    @property
    def kind(self) -> str:
        return "api"


def test_attributes_that_are_json_cross_and_the_rest_stay() -> None:
    body = {"error": {"code": "invalid_base64", "message": "bad image"}}
    exc = ApiStatusError("400 bad image", body=body, response=object())
    data = attributes(exc)
    rebuilt, known = rebuild(qualified_name(ApiStatusError), ["Exception"], str(exc), status_code=400,
                             attributes_json=data)  # fmt: skip
    assert known and isinstance(rebuilt, ApiStatusError) and str(rebuilt) == "400 bad image"
    assert rebuilt.body == body and rebuilt.code is None and rebuilt.message == "400 bad image"
    assert not hasattr(rebuilt, "response") and not hasattr(rebuilt, "_private")
    assert rebuilt.status_code == 400
    # What another side claims cannot overwrite what the class defines, nor what hostel sets itself.
    forged, _ = rebuild(qualified_name(ApiStatusError), [], "m", attributes_json=b'{"kind": "x", "args": [1]}')
    assert forged.kind == "api" and forged.args == ("m",)
    assert attributes(ValueError("plain")) == b""
    huge = ApiStatusError("m", body={"text": "x" * MAX_ATTRIBUTES_BYTES}, response=None)
    assert attributes(huge) == b""  # too large to carry: the exception crosses without them


def test_a_type_this_process_has_comes_back_as_itself() -> None:
    name = qualified_name(InvalidError)
    exc, known = rebuild(name, ["ValueError", "Exception"], "value 'x' is invalid", status_code=400)
    assert known and isinstance(exc, InvalidError) and isinstance(exc, ValueError)
    assert str(exc) == "value 'x' is invalid" and exc.status_code == 400  # type: ignore[attr-defined]
    assert type(exc).__name__ == "InvalidError" and type(exc).__module__ == __name__
    builtin, known = rebuild("KeyError", ["LookupError", "Exception"], "k")
    assert known and type(builtin) is KeyError


def test_an_unknown_type_becomes_its_nearest_known_base() -> None:
    exc, known = rebuild("elsewhere.errors.Missing", ["elsewhere.errors.Base", "ValueError", "Exception"], "gone")
    assert known and isinstance(exc, ValueError) and str(exc) == "gone"
    assert (type(exc).__module__, type(exc).__qualname__) == ("elsewhere.errors", "Missing")
    plain, known = rebuild("elsewhere.Boom", ["Exception", "BaseException"], "boom", status_code=502)
    assert not known and type(plain).__mro__[1] is Exception and plain.status_code == 502  # type: ignore[attr-defined]


def test_a_peer_cannot_make_this_process_import_or_raise_what_it_should_not() -> None:
    assert "antigravity" not in sys.modules
    exc, known = rebuild("antigravity.Fly", [], "no")
    assert not known and "antigravity" not in sys.modules
    for name in ("KeyboardInterrupt", "SystemExit", "asyncio.CancelledError", "GeneratorExit"):
        exc, _ = rebuild(name, ["BaseException"], "no")
        assert isinstance(exc, Exception), name  # never one that would stop or cancel the receiver


@pytest.mark.parametrize("name", ["", ".", "builtins.", "sys.modules", "os.path.join"])
def test_names_that_are_not_exception_classes_are_ignored(name: str) -> None:
    exc, known = rebuild(name, [], "x")
    assert isinstance(exc, Exception) and not known
