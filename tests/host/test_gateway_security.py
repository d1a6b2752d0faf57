"""`hostel run` put on a network, as a user and as an attacker would try it: auth, TLS, browsers, shapes."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hostel.config import ServerSettings
from hostel.errors import ConfigError
from hostel.gateway.serving import check_bind
from tests.conftest import make_config, provider_spec
from tests.json_http import JsonHandler, serving
from tests.served import Served, free_port

TOKEN = "a-long-enough-bearer-token-1"


def _serve(tmp: Path, home: Path, server: dict[str, Any], *, verify: Any = True, **env: str) -> Served:
    """``hostel run`` with the test provider (a secret in its config) and the given ``server:`` block."""
    port = free_port()
    config = make_config(
        tmp,
        specs={"inline/inference/testprov": provider_spec()},
        providers={
            "inference": [
                {
                    "provider_id": "infer",
                    "provider_type": "inline::testprov",
                    "config": {"greeting": "hi", "api_key": "sk-provider-secret"},
                }
            ]
        },
        models=[{"model_id": "llama3", "provider_id": "infer"}],
        server={"port": port, **server},
    )
    scheme = "https" if "tls_certfile" in server else "http"
    return Served(config, home, port=port, env=env, scheme=scheme, verify=verify)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-security-home")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def bearer(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Iterator[Served]:
    auth = {"provider_config": {"type": "bearer", "tokens": {"alice": "${env.TEST_TOKEN}"}}}
    cors = {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"], "allow_headers": ["*"]}
    served = _serve(tmp_path_factory.mktemp("bearer"), home, {"auth": auth, "cors": cors}, TEST_TOKEN=TOKEN)
    yield served
    served.stop()


def test_bearer_accepts_its_token_and_refuses_others(bearer: Served) -> None:
    assert bearer.post("/v1/providers/infer/greet", {"name": "a"}, headers=_bearer(TOKEN)).json() == "hi, a"
    for headers in ({}, _bearer("wrong-token-of-some-length"), {"Authorization": f"Basic {TOKEN}"}):
        refused = bearer.post("/v1/providers/infer/greet", {"name": "a"}, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["error"]["type"] in ("AuthenticationRequired", "AuthenticationFailed")
    for path in ("/v1/providers", "/metrics", "/v1/models", "/v1/hostel/status"):
        assert bearer.get(path).status_code == 401, path
    for path in ("/v1/hostel/reload", "/v1/hostel/providers/infer/stop", "/v1/providers/infer/restart"):
        assert bearer.post(path).status_code == 401, path  # operating the host needs the token too
    assert bearer.post("/v1/providers/infer/greet", {"name": "a"}, headers=_bearer(TOKEN)).status_code == 200
    assert bearer.get("/v1/health").status_code == 200  # open, for load balancers


@pytest.mark.parametrize("header", ["X-OGX-Provider-Data", "X-LlamaStack-Provider-Data"])
def test_the_user_reaches_the_provider_and_cannot_be_claimed(bearer: Served, header: str) -> None:
    forged = {header: json.dumps({"api_key": "k", "__authenticated_user": {"principal": "eve"}})}
    user, api_key = bearer.post("/v1/providers/infer/caller", headers={**_bearer(TOKEN), **forged}).json()
    assert user == {"principal": "alice", "attributes": None} and api_key == "k"


def test_browser_requests_are_refused_unless_allowed(bearer: Served) -> None:
    url, auth = f"{bearer.url}/v1/providers/infer/greet", _bearer(TOKEN)
    plain = httpx.post(url, content='{"name": "a"}', headers={**auth, "Content-Type": "text/plain"})
    assert plain.status_code == 415  # a cross-site "simple request" cannot get through
    rebound = httpx.post(url, json={"name": "a"}, headers={**auth, "Host": "attacker.example:8321"})
    assert rebound.status_code == 400 and "allowed_hosts" in rebound.json()["error"]["message"]
    foreign = httpx.post(url, json={"name": "a"}, headers={**auth, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    allowed = httpx.post(url, json={"name": "a"}, headers={**auth, "Origin": "https://app.example"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    preflight = httpx.options(
        url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )  # no token needed to ask
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]


def test_llama_stack_shapes_and_nothing_extra_leaks(bearer: Served) -> None:
    auth = _bearer(TOKEN)
    data = bearer.get("/v1/providers", headers=auth).json()["data"]
    assert [(p["api"], p["provider_id"], p["provider_type"]) for p in data] == [
        ("inference", "infer", "inline::testprov")
    ]
    assert data[0]["health"]["status"] == "Not Implemented" and data[0]["state"] == "ready"  # no health()
    assert data[0]["config"] == {"greeting": "hi", "api_key": "********"}  # secrets redacted
    assert bearer.get("/v1/providers/infer", headers=auth).json()["provider_id"] == "infer"
    assert bearer.get("/v1/providers/ghost", headers=auth).status_code == 404
    assert bearer.get("/v1/version", headers=auth).json()["version"]
    routes = {(r["route"], r["method"]) for r in bearer.get("/v1/inspect/routes", headers=auth).json()["data"]}
    assert ("/v1/chat/completions", "POST") in routes and ("/v1/providers", "GET") in routes
    missing = bearer.post("/v1/providers/infer/nope", headers=auth)
    assert missing.status_code == 404 and "it has" not in missing.text and "greet" not in missing.text
    failed = bearer.post("/v1/providers/infer/explode", headers=auth)
    assert failed.status_code == 500 and "Traceback" not in failed.text and "File " not in failed.text


def test_the_cli_reaches_an_authenticated_host_with_its_token(bearer: Served) -> None:
    command = [sys.executable, "-m", "hostel", "ps", "--port", str(bearer.port)]
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "HOSTEL_TOKEN" in refused.stderr
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "HOSTEL_TOKEN": TOKEN}
    )
    assert done.returncode == 0 and "infer" in done.stdout


class _JsonHandler(JsonHandler):
    routes: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        self.answer(200, self.routes[self.path])

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, body = self.routes[self.path](request)
        self.answer(status, body)


@pytest.fixture(scope="module")
def identity_server() -> Iterator[tuple[str, type[_JsonHandler]]]:
    """A JWKS and a custom auth endpoint on loopback, as an identity provider would serve them."""
    handler = type("Handler", (_JsonHandler,), {"routes": {}})
    with serving(handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_oauth2_tokens_are_verified_against_the_jwks(
    tmp_path: Path, home: Path, identity_server: tuple[str, type[_JsonHandler]]
) -> None:
    base, handler = identity_server
    key, impostor = _rsa(), _rsa()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    handler.routes["/jwks.json"] = {"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}
    auth = {"provider_config": {"type": "oauth2_token", "issuer": "https://id.example", "audience": "hostel-test",
                                "jwks": {"uri": f"{base}/jwks.json"}}}  # fmt: skip
    served = _serve(tmp_path, home, {"auth": auth})
    try:
        now = int(time.time())
        claims = {"sub": "carol", "iss": "https://id.example", "aud": "hostel-test", "exp": now + 300,
                  "groups": ["eng", "ops"]}  # fmt: skip

        def token(signer: Any = key, **changes: Any) -> str:
            return jwt.encode({**claims, **changes}, signer, algorithm="RS256", headers={"kid": "k1"})

        ok = served.post("/v1/providers/infer/caller", headers=_bearer(token()))
        assert ok.status_code == 200
        assert ok.json()[0] == {"principal": "carol", "attributes": {"roles": ["carol"], "teams": ["eng", "ops"]}}
        for bad, why in (
            (token(signer=impostor), "not valid"),
            (token(exp=now - 10), "expired"),
            (token(aud="someone-else"), "audience"),
            (token(iss="https://evil.example"), "issuer"),
            ("not.a.jwt", "not valid"),
        ):
            refused = served.post("/v1/providers/infer/greet", {"name": "x"}, headers=_bearer(bad))
            assert refused.status_code == 401 and why in refused.json()["error"]["message"], refused.text
        assert served.post("/v1/providers/infer/greet", {"name": "x"}).status_code == 401
    finally:
        served.stop()


def test_a_custom_endpoint_decides_with_llama_stacks_contract(
    tmp_path: Path, home: Path, identity_server: tuple[str, type[_JsonHandler]]
) -> None:
    base, handler = identity_server
    asked: list[dict[str, Any]] = []

    def decide(request: dict[str, Any]) -> tuple[int, Any]:
        asked.append(request)
        if request["api_key"] == "dave-key":
            return 200, {"principal": "dave", "attributes": {"roles": ["reader"]}}
        return 401, {"message": "no"}

    handler.routes["/auth"] = decide
    served = _serve(tmp_path, home, {"auth": {"provider_config": {"type": "custom", "endpoint": f"{base}/auth"}}})
    try:
        ok = served.post("/v1/providers/infer/caller", headers=_bearer("dave-key"))
        assert ok.json()[0] == {"principal": "dave", "attributes": {"roles": ["reader"]}}
        assert served.post("/v1/providers/infer/greet", {"name": "x"}, headers=_bearer("other")).status_code == 401
        assert asked[0]["request"]["path"] == "/v1/providers/infer/caller"
        assert "authorization" not in asked[0]["request"]["headers"]
    finally:
        served.stop()


LLAMA_STACK_CLIENT_TLS = """
import sys
from llama_stack_client import LlamaStackClient
client = LlamaStackClient(base_url=sys.argv[1], api_key=sys.argv[2])
print(client.inspect.health().status, [p.provider_id for p in client.providers.list()])
reply = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "yo"}])
print(reply.choices[0].message.content)
"""


def test_tls_with_the_openai_and_llama_stack_clients_verifying_the_certificate(
    tmp_path: Path, home: Path, llama_stack_client_python: Path
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = {"tls_certfile": "server.pem", "tls_keyfile": "server.pem",
              "auth": {"provider_config": {"type": "bearer", "tokens": [TOKEN]}}}  # fmt: skip
    trusting = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    served = _serve(tmp_path, home, server, verify=trusting)
    try:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=TOKEN, http_client=httpx.Client(verify=trusting))
        reply = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "yo"}])
        assert reply.choices[0].message.content == "hi from llama3: yo"
        done = subprocess.run(
            [str(llama_stack_client_python), "-c", LLAMA_STACK_CLIENT_TLS, served.url, TOKEN],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "SSL_CERT_FILE": str(tmp_path / "ca.pem")},  # httpx trusts the test CA
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["OK ['infer']", "hi from llama3: yo"]
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA refuses the server
            httpx.get(f"{served.url}/v1/health")
        with pytest.raises(httpx.HTTPError):  # and nothing is served in the clear
            httpx.get(f"http://127.0.0.1:{served.port}/v1/health", timeout=5)
    finally:
        served.stop()


def test_oauth2_tokens_can_be_checked_against_a_jwks_file(tmp_path: Path) -> None:
    import asyncio

    from hostel.config import OAuth2TokenAuth
    from hostel.gateway.auth import AuthFailed, JwtTokens

    key = _rsa()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "static", "alg": "RS256"}]}))
    config = OAuth2TokenAuth(type="oauth2_token", audience="a", jwks={"uri": "jwks.json"})  # type: ignore[arg-type]
    tokens = JwtTokens(config, tmp_path)
    claims = {"sub": "erin", "aud": "a", "exp": int(time.time()) + 60, "tenant": "t1"}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "static"})
    user = asyncio.run(tokens.authenticate(good, {}))
    assert user.principal == "erin" and user.attributes == {"roles": ["erin"], "namespaces": ["t1"]}
    forged = jwt.encode(claims, "a-shared-secret-of-some-length-to-try", algorithm="HS256", headers={"kid": "static"})
    with pytest.raises(AuthFailed):  # the key's algorithm decides, never the token's header
        asyncio.run(tokens.authenticate(forged, {}))


def test_a_non_loopback_address_without_auth_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "run", str(config), "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "refusing to serve on 0.0.0.0 without authentication" in done.stderr
    assert "--insecure" in done.stderr
    check_bind("127.0.0.1", ServerSettings(), insecure=False)
    check_bind("0.0.0.0", ServerSettings(), insecure=True)
    check_bind("0.0.0.0", ServerSettings(insecure=True), insecure=False)
    with pytest.raises(ConfigError):
        check_bind("192.0.2.10", ServerSettings(), insecure=False)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"auth": {"provider_config": {"type": "github_token"}}}, "does not match any of the expected tags"),
        ({"auth": {"provider_config": {"type": "oauth2_token", "introspection": {"url": "x"}}}}, "introspection"),
        (
            {"auth": {"provider_config": {"type": "bearer", "tokens": ["t" * 20]}, "access_policy": [{"x": 1}]}},
            "not implemented by hostel",
        ),
        ({"quota": {"period": "day"}}, "server.quota is not implemented"),
        ({"tls_certfile": "x.pem", "unknown_key": 1}, "server.unknown_key: unknown key 'unknown_key'"),
        ({"auth": {"provider_config": {"type": "bearer", "tokens": ["short"]}}}, "16 characters"),
    ],
)
def test_server_settings_hostel_does_not_honour_are_config_errors(
    tmp_path: Path, server: dict[str, Any], message: str
) -> None:
    from hostel.config.plan import load_plan

    with pytest.raises(ConfigError, match=message):
        load_plan(make_config(tmp_path, server=server))
