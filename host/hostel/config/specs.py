"""Provider specs from an ``external_providers_dir`` laid out as ``{remote,inline}/{api}/{name}.yaml``.

Loading reports every problem at once (file, key, what to do); it knows nothing of envs or workers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hostel.errors import Problem
from hostel_sdk.api import API_NAMES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderSpec:
    """What a provider is: its module, config class, packages and API dependencies."""

    api: str
    provider_type: str
    kind: Literal["remote", "inline"]
    module: str
    config_class: str | None
    pip_packages: tuple[str, ...]
    provider_data_validator: str | None = None
    api_dependencies: tuple[str, ...] = ()
    optional_api_dependencies: tuple[str, ...] = ()
    container_image: str | None = None
    source: Path | None = None
    from_package: bool = False  # a run-config `module:` entry: the real spec comes from inside the venv
    # Such an entry's (module, config_class) as written, once the package's spec replaced them: its env stays
    # keyed by what the entry says, so adopting the spec does not build a second env.
    declared: tuple[str, str | None] | None = None


class _SpecFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    adapter_type: str | None = None
    module: str | None = None
    config_class: str | None = None
    pip_packages: list[str] = Field(default_factory=list)
    provider_data_validator: str | None = None
    api_dependencies: list[str] = Field(default_factory=list)
    optional_api_dependencies: list[str] = Field(default_factory=list)
    container_image: str | None = None


def resolve_requirement(requirement: str, base_dir: Path) -> str:
    """A pip requirement; a relative path (``./pkg``, ``../pkg``) becomes absolute against ``base_dir``."""
    text = requirement.strip()
    if text in (".", "..") or text.startswith(("./", "../")):
        return str((base_dir / text).resolve())
    return text


def parse_spec(
    data: Any, *, api: str, kind: Literal["remote", "inline"], name: str, source: Path
) -> tuple[ProviderSpec | None, list[Problem]]:
    """Build one spec from a parsed YAML document; remote specs may nest their fields under ``adapter:``."""
    label = str(source)
    if not isinstance(data, dict):
        return None, [Problem(label, "", f"a provider spec must be a YAML mapping, got {type(data).__name__}")]
    fields = dict(data)
    prefix = ""
    if isinstance(data.get("adapter"), dict):
        fields = {**{k: v for k, v in data.items() if k != "adapter"}, **data["adapter"]}
        prefix = "adapter."
    try:
        spec = _SpecFields.model_validate(fields)
    except ValidationError as exc:
        return None, [Problem(label, prefix + ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
    problems = []
    if spec.adapter_type is not None and spec.adapter_type != name:
        problems.append(
            Problem(
                label,
                f"{prefix}adapter_type",
                f"is {spec.adapter_type!r} but the file is named {name!r}.yaml; they must be equal",
            )
        )
    if kind == "remote" and "adapter" not in data and "adapter_type" not in data:
        logger.debug("%s: flat remote spec (no adapter: block)", label)
    if not spec.module:
        problems.append(Problem(label, f"{prefix}module", "is required: the Python module that provides the factory"))
    for key in ("api_dependencies", "optional_api_dependencies"):
        for dep in getattr(spec, key):
            if dep not in API_NAMES:
                problems.append(Problem(label, key, f"unknown API {dep!r}; known APIs: {', '.join(API_NAMES)}"))
    if problems:
        return None, problems
    assert spec.module is not None
    return (
        ProviderSpec(
            api=api,
            provider_type=f"{kind}::{name}",
            kind=kind,
            module=spec.module,
            config_class=spec.config_class,
            pip_packages=tuple(resolve_requirement(r, source.parent) for r in spec.pip_packages),
            provider_data_validator=spec.provider_data_validator,
            api_dependencies=tuple(spec.api_dependencies),
            optional_api_dependencies=tuple(spec.optional_api_dependencies),
            container_image=spec.container_image,
            source=source,
        ),
        [],
    )


def load_specs(directory: Path) -> tuple[dict[tuple[str, str], ProviderSpec], list[Problem]]:
    """Load every spec under ``directory``, keyed by ``(api, provider_type)``; also return every problem."""
    specs: dict[tuple[str, str], ProviderSpec] = {}
    label = str(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        return specs, [
            Problem(
                label,
                "external_providers_dir",
                f"{what}; create it with {{remote,inline}}/<api>/<name>.yaml specs or fix the path",
            )
        ]
    problems: list[Problem] = []
    for kind_dir in sorted(directory.iterdir()):
        if not kind_dir.is_dir():
            if kind_dir.suffix in (".yaml", ".yml"):
                problems.append(
                    Problem(str(kind_dir), "", "spec files belong in remote/<api>/ or inline/<api>/, not at the top")
                )
            continue
        if kind_dir.name not in ("remote", "inline"):
            problems.append(Problem(str(kind_dir), "", "unexpected directory; only remote/ and inline/ are read"))
            continue
        kind: Literal["remote", "inline"] = "remote" if kind_dir.name == "remote" else "inline"
        for api_dir in sorted(kind_dir.iterdir()):
            if not api_dir.is_dir():
                continue
            if api_dir.name not in API_NAMES:
                problems.append(
                    Problem(str(api_dir), "", f"unknown API {api_dir.name!r}; known APIs: {', '.join(API_NAMES)}")
                )
                continue
            for path in sorted([*api_dir.glob("*.yaml"), *api_dir.glob("*.yml")]):
                try:
                    with path.open() as stream:  # a stream, so that a YAML error names the file
                        data = yaml.safe_load(stream)
                except yaml.YAMLError as exc:
                    problems.append(Problem(str(path), "", f"not valid YAML: {exc}"))
                    continue
                except (OSError, UnicodeDecodeError) as exc:
                    problems.append(Problem(str(path), "", f"cannot read: {exc}"))
                    continue
                spec, found = parse_spec(data, api=api_dir.name, kind=kind, name=path.stem, source=path)
                problems.extend(found)
                if spec is not None:
                    specs[(spec.api, spec.provider_type)] = spec
    return specs, problems


_VERSION_START = re.compile(r"[=<>!~\[;@ ]")


def package_spec(api: str, provider_type: str, requirement: str) -> ProviderSpec:
    """A placeholder spec for a run-config ``module: name[==version]`` entry with no spec file.

    The requirement is installed as is (pip normalises ``_`` to ``-``); the real spec is read from
    ``name.provider.get_provider_spec()`` (or an entry point) inside the venv once it is built.
    """
    kind: Literal["remote", "inline"] = "remote" if provider_type.startswith("remote::") else "inline"
    module = _VERSION_START.split(requirement.strip(), maxsplit=1)[0]
    return ProviderSpec(
        api=api,
        provider_type=provider_type,
        kind=kind,
        module=module,
        config_class=None,
        pip_packages=(requirement.strip(),),
        from_package=True,
    )


def apply_overrides(spec: ProviderSpec, overrides: Mapping[str, Any]) -> ProviderSpec:
    """Replace fields of a published spec that is wrong (``spec_overrides`` in the run config)."""
    from dataclasses import replace

    allowed = {
        "module",
        "config_class",
        "provider_data_validator",
        "pip_packages",
        "api_dependencies",
        "optional_api_dependencies",
    }
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"cannot override {', '.join(sorted(unknown))}; overridable: {', '.join(sorted(allowed))}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return replace(spec, **values)
