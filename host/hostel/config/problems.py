"""Config problems as a user reads them: pydantic's errors turned into ``Problem``s at the keys the user wrote.

One message per place in the file: a union's members that do not fit what was written are dropped (a mapping
given for ``bool | Settings`` is judged as ``Settings``), an unknown key gets the known key it probably meant,
and a boolean where text was expected says that YAML reads unquoted yes/no/on/off as booleans.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from hostel.errors import Problem


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every key ``model`` and the models inside it accept (what an unknown key may be a misspelling of)."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for arg in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg, seen)
    return names


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``known``, else ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def pydantic_problems(
    label: str, prefix: str, exc: ValidationError, model: type[BaseModel] | None = None
) -> list[Problem]:
    """``exc``'s errors as problems of ``label`` under ``prefix``; ``model`` names the keys a misspelling may mean."""
    problems = []
    for loc, errors in _reduce_unions(exc.errors()).items():
        key = ".".join([prefix, *(str(p) for p in loc)]) if prefix else ".".join(str(p) for p in loc)
        err = errors[0]
        if err["type"] == "extra_forbidden":
            name = str(loc[-1])
            hint = did_you_mean(name, _field_names(model)) if model is not None else ""
            problems.append(Problem(label, key, f"unknown key {name!r}{hint}; remove it or fix its spelling"))
            continue
        message = ", or ".join(
            [_MAPPING.sub("a mapping", e["msg"]) if i == 0 else _MAPPING.sub("a mapping", e["msg"]).removeprefix(
                "Input should be ") for i, e in enumerate(errors)]
        )  # fmt: skip
        value = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        if isinstance(err.get("input"), bool) and "boolean" not in message:
            value += "; YAML reads unquoted yes/no/on/off as true/false: quote the value"
        problems.append(Problem(label, key, f"{message}{value}"))
    return problems


_MAPPING = re.compile(r"a valid dictionary or instance of \w+")
_SCALAR_TAGS = frozenset({"bool", "int", "float", "str", "none"})


def _is_union_tag(part: Any) -> bool:
    """Whether a part of a pydantic error's location names a union's member (``bool``, ``SandboxSettings``,
    ``literal['any','none']``) rather than a key the user wrote (config keys are lower case)."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or "-" in part or part in _SCALAR_TAGS)


def _reduce_unions(errors: list[Any]) -> dict[tuple[Any, ...], list[Any]]:
    """Errors by the location the user wrote, union members dropped: at each union, only the members that got
    furthest into what the user wrote count (a mapping given for ``bool | Settings`` is judged as Settings);
    members that tie at one location are merged into one message."""
    pending = [(tuple(err["loc"]), err) for err in errors]
    while any(_is_union_tag(p) for loc, _ in pending for p in loc):
        points: dict[tuple[Any, ...], int] = {}
        for loc, _ in pending:
            i = next((i for i, p in enumerate(loc) if _is_union_tag(p)), None)
            if i is not None:
                depth = sum(1 for p in loc[i + 1 :] if not _is_union_tag(p))
                points[loc[:i]] = max(points.get(loc[:i], 0), depth)
        reduced = []
        for loc, err in pending:
            i = next((i for i, p in enumerate(loc) if _is_union_tag(p)), None)
            if i is None:
                reduced.append((loc, err))
            elif sum(1 for p in loc[i + 1 :] if not _is_union_tag(p)) == points[loc[:i]]:
                reduced.append((loc[:i] + loc[i + 1 :], err))
        pending = reduced
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for loc, err in pending:
        merged.setdefault(loc, []).append(err)
    return merged
