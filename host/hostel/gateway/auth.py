"""Who is calling: ``server.auth`` as Llama Stack configures it, for the HTTP gateway.

Three providers: ``oauth2_token`` (a JWT verified with PyJWT against the keys of a JWKS URL or file, its
issuer, audience and expiry, claims mapped to the user's attributes as Llama Stack maps them), ``custom``
(Llama Stack's external endpoint contract: ``{api_key, request}`` in, ``{principal, attributes}`` out) and
hostel's ``bearer`` (static tokens, compared in constant time). Each turns a bearer token into a ``User``
or raises ``AuthFailed``; the gateway answers 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

import httpx
import jwt

from hostel.config import AuthSettings, BearerAuth, CustomAuth, OAuth2TokenAuth

logger = logging.getLogger(__name__)

# Where the authenticated user travels with a call, as Llama Stack keeps it in its request provider data.
USER_KEY = "__authenticated_user"


@dataclass(frozen=True)
class User:
    """An authenticated caller: Llama Stack's ``User`` (principal and access attributes)."""

    principal: str
    attributes: Mapping[str, list[str]] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """As JSON, the way it travels to providers."""
        return {"principal": self.principal, "attributes": dict(self.attributes) if self.attributes else None}


class AuthFailed(Exception):  # noqa: N818 - the gateway's 401, never seen outside it
    """The credential was missing or not accepted; ``message`` is safe to show the client."""

    def __init__(self, message: str, *, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class Authenticator(Protocol):
    """Turns a bearer token (and the request it came with) into a user."""

    async def authenticate(self, token: str, scope: Mapping[str, Any]) -> User:
        """The user, or ``AuthFailed``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class BearerTokens:
    """``bearer``: one of the configured tokens; the principal is its name (or ``token-N``)."""

    def __init__(self, config: BearerAuth) -> None:
        tokens = (
            config.tokens
            if isinstance(config.tokens, dict)
            else {f"token-{i + 1}": t for i, t in enumerate(config.tokens)}
        )
        self._tokens = [(principal, token.encode()) for principal, token in tokens.items()]

    async def authenticate(self, token: str, scope: Mapping[str, Any]) -> User:
        given = token.encode()
        found = None
        for principal, known in self._tokens:  # every token compared, so timing says nothing about which
            if hmac.compare_digest(given, known):
                found = principal
        if found is None:
            raise AuthFailed("the bearer token is not one this server accepts")
        return User(found)

    async def close(self) -> None:
        """Nothing to release."""


def attributes_from_claims(claims: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, list[str]]:
    """Llama Stack's mapping of token claims (dotted paths for nested ones) to the user's attributes."""
    attributes: dict[str, list[str]] = {}
    for claim_key, attribute in mapping.items():
        value: Any = claims
        for part in claim_key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            value = claims.get(claim_key)
        if isinstance(value, str):
            values = value.split()
        elif isinstance(value, list):
            values = [str(v) for v in value]
        else:
            continue
        attributes.setdefault(attribute, []).extend(values)
    return attributes


class JwtTokens:
    """``oauth2_token``: a signed, unexpired JWT for this audience (and issuer, if set)."""

    def __init__(self, config: OAuth2TokenAuth, base_dir: Path) -> None:
        self._config = config
        uri = config.jwks.uri
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if urlparse(uri).scheme in ("http", "https"):
            context = ssl.create_default_context(cafile=str(config.tls_cafile) if config.tls_cafile else None)
            if not config.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            headers = {"Authorization": f"Bearer {config.jwks.token}"} if config.jwks.token else {}
            self._client = jwt.PyJWKClient(
                uri, cache_keys=True, lifespan=config.jwks.key_recheck_period, headers=headers, ssl_context=context
            )
        else:
            path = base_dir / uri.removeprefix("file://")
            self._keys = jwt.PyJWKSet.from_dict(json.loads(path.read_text()))

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            return await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)  # fetches keys: blocking
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        keys = [k for k in self._keys.keys if kid is None or k.key_id == kid]
        if len(keys) != 1:
            raise jwt.PyJWKError(f"no single key for kid {kid!r} in the JWKS")
        return keys[0]

    async def authenticate(self, token: str, scope: Mapping[str, Any]) -> User:
        config = self._config
        try:
            key = await self._signing_key(token)
            # The algorithm is the key's, never the token's own claim (no alg confusion).
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=config.audience,
                issuer=config.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthFailed(f"the token is not for this audience ({config.audience!r})") from None
        except jwt.InvalidIssuerError:
            raise AuthFailed("the token is not from the configured issuer") from None
        except (jwt.PyJWTError, jwt.PyJWKError, ValueError, KeyError) as exc:
            logger.info("token refused: %s", exc)
            raise AuthFailed("the token is not valid") from None
        return User(str(claims["sub"]), attributes_from_claims(claims, config.claims_mapping))

    async def close(self) -> None:
        """Nothing to release (PyJWKClient opens a connection per fetch)."""


class CustomEndpoint:
    """``custom``: your endpoint decides, given the token and the request's path, headers and query."""

    def __init__(self, config: CustomAuth) -> None:
        self._endpoint = config.endpoint
        self._http = httpx.AsyncClient(timeout=10.0)

    async def authenticate(self, token: str, scope: Mapping[str, Any]) -> User:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        headers.pop("authorization", None)
        request = {
            "api_key": token,
            "request": {
                "path": scope.get("path", ""),
                "headers": headers,
                "params": parse_qs(scope.get("query_string", b"").decode("latin-1")),
            },
        }
        try:
            response = await self._http.post(self._endpoint, json=request)
        except httpx.HTTPError as exc:
            logger.warning("the auth endpoint %s failed: %s", self._endpoint, exc)
            raise AuthFailed("the authentication service is not reachable", error="temporarily_unavailable") from None
        if response.status_code != 200:
            raise AuthFailed("the authentication service refused the token")
        try:
            body = response.json()
            principal = body["principal"]
            attributes = body.get("attributes")
            if not isinstance(principal, str) or not (attributes is None or isinstance(attributes, dict)):
                raise TypeError(body)
        except (ValueError, KeyError, TypeError):
            logger.warning("the auth endpoint %s answered in an unknown shape", self._endpoint)
            raise AuthFailed("the authentication service gave an invalid answer") from None
        return User(principal, attributes)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def make_authenticator(settings: AuthSettings, base_dir: Path) -> Authenticator:
    """The authenticator for ``server.auth`` (paths relative to the run config's directory)."""
    config = settings.provider_config
    if isinstance(config, BearerAuth):
        return BearerTokens(config)
    if isinstance(config, OAuth2TokenAuth):
        return JwtTokens(config, base_dir)
    return CustomEndpoint(config)
