"""JWT mode with a JWKS URL: a real HTTP server on a random port publishes the identity provider's keys.

Attacks tried against it: ``alg: none``, HS256 "signed" with the RSA public key, a key the provider never
published under a known ``kid``, wrong audience and issuer, expiry, a tampered payload, unknown ``kid``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.unit.test_gateway_auth import (
    NoPeers,
    add_probe_routes,
    assert_unauthorized,
    bearer,
    claims,
    hand_signed,
)

ISSUER = "https://idp.example"
RETRY_AFTER_S = 3


class Provider:
    """An identity provider's JWKS endpoint: serves ``keys``, counts fetches, can go away."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps({"keys": provider.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def publish(self, kid: str, public_jwk: dict[str, Any]) -> None:
        self.keys.append({**public_jwk, "kid": kid, "use": "sig"})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "alg": "RS256"}


@pytest.fixture
def provider(rsa_key: rsa.RSAPrivateKey) -> Iterator[Provider]:
    running = Provider()
    running.publish("k1", rsa_jwk(rsa_key))
    yield running
    running.stop()


def jwks_app(tmp_path: Path, url: str, **overrides: Any) -> FastAPI:
    settings = GatewaySettings(
        data_dir=tmp_path,
        auth_mode="jwt",
        jwt_jwks_url=url,
        jwt_issuer=ISSUER,
        jwt_algorithms=["RS256", "ES256"],
        retry_after_s=RETRY_AFTER_S,
        **overrides,
    )
    app = create_app(settings, clients=NoPeers())
    add_probe_routes(app)
    return app


@pytest.fixture
async def client(tmp_path: Path, provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=jwks_app(tmp_path, provider.url))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def signed(key: Any, kid: str, algorithm: str = "RS256", **overrides: Any) -> str:
    return jwt.encode(claims(**{"iss": ISSUER, **overrides}), key, algorithm=algorithm, headers={"kid": kid})


async def whoami(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/probe/whoami", headers=bearer(token))


async def test_a_token_signed_with_a_published_key_is_accepted_and_keys_are_cached(
    client: httpx.AsyncClient, provider: Provider, rsa_key: rsa.RSAPrivateKey
) -> None:
    for subject in ("a-1", "a-2", "a-3"):
        response = await whoami(client, signed(rsa_key, "k1", sub=subject, role="agent"))
        assert response.status_code == 200, response.text
        assert response.json() == {"subject": subject, "role": "agent"}
    assert provider.fetches == 1


async def test_es256_keys_are_accepted(tmp_path: Path, provider: Provider) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    provider.publish("e1", {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "alg": "ES256"})
    transport = httpx.ASGITransport(app=jwks_app(tmp_path, provider.url))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        assert (await whoami(client, signed(ec_key, "e1", algorithm="ES256"))).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [{"aud": "someone-else"}, {"iss": "https://evil.example"}, {"role": "root"}, {"sub": None}],
    ids=["audience", "issuer", "role", "no-subject"],
)
async def test_wrong_claims_are_refused(client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey, bad: Any) -> None:
    assert_unauthorized(await whoami(client, signed(rsa_key, "k1", **bad)), "invalid_token")


async def test_an_expired_token_is_refused(client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey) -> None:
    expired = signed(rsa_key, "k1", exp=int(claims()["iat"]) - 3600)
    assert_unauthorized(await whoami(client, expired), "token_expired")


async def test_alg_none_is_refused_without_fetching_keys(client: httpx.AsyncClient, provider: Provider) -> None:
    forged = hand_signed({"alg": "none", "kid": "k1"}, claims(iss=ISSUER, role="admin"), hmac_key=None)
    assert_unauthorized(await whoami(client, forged), "invalid_token")
    assert provider.fetches == 0


async def test_hs256_signed_with_the_published_public_key_is_refused(
    client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    # Algorithm confusion: a verifier that let the header pick the algorithm would check this HMAC with
    # the public key, which everyone can download.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hand_signed({"alg": "HS256", "kid": "k1"}, claims(iss=ISSUER, role="admin"), hmac_key=public_pem)
    assert_unauthorized(await whoami(client, forged), "invalid_token")


async def test_a_token_signed_with_an_unpublished_key_under_a_known_kid_is_refused(
    client: httpx.AsyncClient, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    assert_unauthorized(await whoami(client, signed(other_rsa_key, "k1", role="admin")), "invalid_token")


async def test_a_tampered_payload_is_refused(client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey) -> None:
    header, _, signature = signed(rsa_key, "k1", role="customer").split(".")
    forged_claims = hand_signed({"alg": "RS256"}, claims(iss=ISSUER, role="admin"), hmac_key=None).split(".")[1]
    assert_unauthorized(await whoami(client, f"{header}.{forged_claims}.{signature}"), "invalid_token")


async def test_a_token_without_kid_is_refused(client: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(iss=ISSUER), rsa_key, algorithm="RS256")
    assert_unauthorized(await whoami(client, token), "invalid_token")


async def test_an_unknown_kid_refetches_at_most_once_per_cooldown(
    client: httpx.AsyncClient, provider: Provider, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert (await whoami(client, signed(rsa_key, "k1"))).status_code == 200
    for _ in range(3):
        assert_unauthorized(await whoami(client, signed(rsa_key, "made-up")), "invalid_token")
    assert provider.fetches == 1  # the first fetch started the cooldown: made-up kids cost nothing


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    tmp_path: Path, provider: Provider, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    transport = httpx.ASGITransport(app=jwks_app(tmp_path, provider.url, jwt_jwks_refresh_cooldown_s=0))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        assert (await whoami(client, signed(rsa_key, "k1"))).status_code == 200
        provider.publish("k2", rsa_jwk(other_rsa_key))
        assert (await whoami(client, signed(other_rsa_key, "k2"))).status_code == 200
    assert provider.fetches == 2


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert response.json()["code"] == "dependency_unavailable"


async def test_an_unreachable_jwks_endpoint_is_503(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    app = jwks_app(tmp_path, f"http://127.0.0.1:{_unused_port()}/jwks.json")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        assert_unavailable(await whoami(client, signed(rsa_key, "k1")))


async def test_a_jwks_endpoint_that_never_answers_is_503_after_its_timeout(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    with socket.socket() as silent:  # listens, so connections queue, but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
        app = jwks_app(tmp_path, url, jwt_jwks_timeout_s=0.3)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            assert_unavailable(await whoami(client, signed(rsa_key, "k1")))


async def test_keys_fetched_before_an_outage_keep_serving(
    tmp_path: Path, provider: Provider, rsa_key: rsa.RSAPrivateKey
) -> None:
    # A lifespan of a microsecond: every request finds the cache expired and tries the endpoint.
    app = jwks_app(tmp_path, provider.url, jwt_jwks_cache_s=1e-6)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        assert (await whoami(client, signed(rsa_key, "k1"))).status_code == 200
        provider.stop()
        assert (await whoami(client, signed(rsa_key, "k1", sub="c-2"))).status_code == 200
        # Still nothing to offer for a key never fetched.
        assert_unavailable(await whoami(client, signed(rsa_key, "k9")))


def test_jwt_mode_takes_a_key_file_or_a_jwks_url_not_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GatewaySettings(
            data_dir=tmp_path,
            auth_mode="jwt",
            jwt_public_key_file=tmp_path / "k.pem",
            jwt_jwks_url="https://idp.example/jwks.json",
        )
    with pytest.raises(ValueError, match="jwt_jwks_url"):
        GatewaySettings(data_dir=tmp_path, auth_mode="jwt", jwt_jwks_url="file:///etc/passwd")
