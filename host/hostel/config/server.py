"""The ``server:`` block of a run config: Llama Stack's keys hostel honours (port, host, auth, TLS, CORS) and
its own (``insecure``, ``allowed_hosts``). Anything else is an error, never silently ignored: an auth or TLS
setting that hostel did not apply would serve in the clear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JwksSettings(_Strict):
    """Where an ``oauth2_token`` provider's signing keys come from: an ``https://`` JWKS URL, or a JWKS file
    (static keys) given as a path or ``file://`` URL."""

    uri: str
    token: str | None = None  # sent as a bearer token when fetching the keys
    key_recheck_period: int = Field(3600, gt=0)


# Llama Stack's default: which token claims become which of the user's attributes.
_CLAIMS_MAPPING = {
    "sub": "roles", "username": "roles", "groups": "teams", "team": "teams", "project": "projects",
    "tenant": "namespaces", "namespace": "namespaces",
}  # fmt: skip


class OAuth2TokenAuth(_Strict):
    """Llama Stack's ``oauth2_token``: a JWT verified against the JWKS keys, its issuer and audience."""

    type: Literal["oauth2_token"]
    audience: str = "llama-stack"
    issuer: str | None = None
    verify_tls: bool = True
    tls_cafile: Path | None = None
    claims_mapping: dict[str, str] = Field(default_factory=lambda: dict(_CLAIMS_MAPPING))
    jwks: JwksSettings

    @model_validator(mode="before")
    @classmethod
    def _no_introspection(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("introspection"):
            raise ValueError("introspection (RFC 7662) is not implemented by hostel: verify JWTs with jwks instead")
        return data


class CustomAuth(_Strict):
    """Llama Stack's ``custom``: your endpoint answers ``{api_key, request}`` with ``{principal, attributes}``."""

    type: Literal["custom"]
    endpoint: str


class BearerAuth(_Strict):
    """hostel's ``bearer``: static tokens (from ``${env.…}``), a list or ``{principal: token}``."""

    type: Literal["bearer"]
    tokens: list[str] | dict[str, str]

    @field_validator("tokens")
    @classmethod
    def _enough(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        tokens = value.values() if isinstance(value, dict) else value
        if not tokens or any(len(token) < 16 for token in tokens):
            raise ValueError("give at least one token, each of 16 characters or more")
        return value


AuthProvider = Annotated[OAuth2TokenAuth | CustomAuth | BearerAuth, Field(discriminator="type")]


class AuthSettings(_Strict):
    """``server.auth``, in Llama Stack's shape. ``route_policy`` and ``access_policy`` are not implemented: a
    config that sets them is refused rather than served without them."""

    provider_config: AuthProvider
    route_policy: list[Any] = Field(default_factory=list)
    access_policy: list[Any] = Field(default_factory=list)

    @field_validator("route_policy", "access_policy")
    @classmethod
    def _not_implemented(cls, value: list[Any]) -> list[Any]:
        if value:
            raise ValueError(
                "not implemented by hostel, which would serve every authenticated user without these rules; "
                "remove them, or enforce them in a proxy in front of hostel"
            )
        return value


class CorsSettings(_Strict):
    """``server.cors`` as Llama Stack writes it (``true``: any http(s)://localhost origin)."""

    allow_origins: list[str] = Field(default_factory=list)
    allow_origin_regex: str | None = None
    allow_methods: list[str] = Field(default_factory=lambda: ["OPTIONS"])
    allow_headers: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = Field(600, ge=0)


class ServerSettings(_Strict):
    """The ``server:`` block: the Llama Stack keys hostel honours, and hostel's own. Any other key is an error
    (never silently ignored: a TLS or auth setting hostel did not apply would serve in the clear)."""

    port: int = Field(8321, ge=0, le=65535)
    host: str | None = None
    auth: AuthSettings | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_cafile: Path | None = None  # client certificates must be signed by it (mutual TLS)
    cors: bool | CorsSettings | None = None
    # hostel's own: serve a non-loopback address without auth anyway; names the server answers to (Host).
    insecure: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    # hostel's own bounds on request bodies, across every connection (docs/http.md): the bytes of bodies being
    # read or held by requests in flight; requests in flight per client address; the longest wait for a body's
    # next bytes.
    # Serve /v1/hostel/* (status, reload, provider start/stop/restart) without the per-run admin token that
    # `hostel run` otherwise requires when server.auth is unset (docs/http.md).
    open_admin: bool = False
    max_request_bodies_mb: int = Field(256, ge=1)
    max_requests_per_client: int = Field(256, ge=1)
    body_timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _unimplemented(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("quota", "workers"):
                if key in data and data[key] not in (None, 1):
                    raise ValueError(f"server.{key} is not implemented by hostel; remove it")
            data = {k: v for k, v in data.items() if k not in ("quota", "workers")}
        return data
