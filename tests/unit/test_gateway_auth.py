"""Bearer-token verification and role checks, through the real app (in process, no peers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from services.gateway.app import create_app
from services.gateway.auth import TokenVerifier, authenticate, get_verifier, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.principal import Principal, Role
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token

pytestmark = pytest.mark.unit

ISSUER = "supportdesk-local"
AUDIENCE = "supportdesk"

# An RSA public key as an external issuer would publish it. Only its bytes matter here: they are what an
# attacker would use as an HMAC secret in an algorithm-confusion attack.
RSA_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3RX5epZay73Po0ZaAPky
0qy7tuuwvRcFXkQVrA3jsEKBcDPK3tEf65ug3uGbjteDVu2uw4qNST8V9kI4REGB
PSyiMGacLhe/HMcxmzKTbwpgtvGtrgDjiLp1jr9IbKwc7Z726UM9oMZMcztRIHQS
2R0NzVUGXN4DP9kFxtuH3eIBD1iZi5rXkvKSEwL7vyoA4cbOAO1HQbxngHVIfSaZ
knKaG3t97dwgHfJ6WQDAbSAyAi1zzasPm2TzvawIwUb9/AWcZaLswXmva9GVWu21
rjXkkd+x/q8VquoQpZa3louA1v7tK+aZS3kv4abN1B8zJ/jDVhVPly/4mflBqeNX
3QIDAQAB
-----END PUBLIC KEY-----
"""


class NoPeers(ServiceClients):
    """The app needs a ServiceClients; these tests never reach a peer."""

    def __init__(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built without PyJWT, which (rightly) refuses to produce the forgeries tested here."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "c-1",
        "role": "customer",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def add_probe_routes(app: FastAPI) -> None:
    @app.get("/probe/whoami")
    async def whoami(principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, str]:
        return {"subject": principal.subject, "role": principal.role.value}

    @app.get("/probe/supervisors")
    async def supervisors(
        principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    ) -> dict[str, str]:
        return {"subject": principal.subject}


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(data_dir=tmp_path)


@pytest.fixture
def secret(settings: GatewaySettings) -> bytes:
    return load_or_create_local_secret(settings.local_secret_path)


@pytest.fixture
def app(settings: GatewaySettings) -> FastAPI:
    app = create_app(settings, clients=NoPeers())
    add_probe_routes(app)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 401
    assert body["type"].endswith("/" + code)


async def test_valid_local_token_is_accepted(client: httpx.AsyncClient, secret: bytes) -> None:
    token = mint_local_token(secret, role="agent", subject="a-7", issuer=ISSUER, audience=AUDIENCE)
    response = await client.get("/probe/whoami", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"subject": "a-7", "role": "agent"}


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/whoami")
    assert_unauthorized(response, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_other_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/whoami", headers={"Authorization": "Basic YTpi"})
    assert_unauthorized(response, "unauthenticated")


async def test_expired_token_is_401(client: httpx.AsyncClient, secret: bytes) -> None:
    past = int(time.time()) - 7200
    token = jwt.encode(claims(iat=past, exp=past + 60), secret, algorithm="HS256")
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(token)), "token_expired")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"aud": None}, id="no-aud"),
        pytest.param({"iss": None}, id="no-iss"),
        pytest.param({"sub": None}, id="no-sub"),
        pytest.param({"role": "root"}, id="unknown-role"),
        pytest.param({"role": None}, id="no-role"),
    ],
)
async def test_bad_claims_are_401(client: httpx.AsyncClient, secret: bytes, bad: dict[str, Any]) -> None:
    token = jwt.encode(claims(**bad), secret, algorithm="HS256")
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(token)), "invalid_token")


async def test_alg_none_is_401(client: httpx.AsyncClient) -> None:
    token = hand_signed({"alg": "none", "typ": "JWT"}, claims(role="admin"), hmac_key=None)
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(token)), "invalid_token")


async def test_token_signed_with_another_secret_is_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), b"x" * 32, algorithm="HS256")
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(token)), "invalid_token")


async def test_tampered_payload_is_401(client: httpx.AsyncClient, secret: bytes) -> None:
    genuine = jwt.encode(claims(role="customer"), secret, algorithm="HS256")
    header, _, signature = genuine.split(".")
    escalated = _b64(json.dumps(claims(role="admin")).encode())
    tampered = f"{header}.{escalated}.{signature}"
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(tampered)), "invalid_token")


async def test_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer("not.a.jwt")), "invalid_token")


async def test_wrong_role_is_403(client: httpx.AsyncClient, secret: bytes) -> None:
    token = mint_local_token(secret, role="customer", subject="c-1", issuer=ISSUER, audience=AUDIENCE)
    response = await client.get("/probe/supervisors", headers=bearer(token))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "forbidden"

    token = mint_local_token(secret, role="supervisor", subject="s-1", issuer=ISSUER, audience=AUDIENCE)
    assert (await client.get("/probe/supervisors", headers=bearer(token))).status_code == 200


async def test_real_route_refuses_wrong_role(client: httpx.AsyncClient, secret: bytes) -> None:
    token = mint_local_token(secret, role="customer", subject="c-1", issuer=ISSUER, audience=AUDIENCE)
    response = await client.get("/v1/queues", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


async def test_jwt_mode_refuses_hs256_signed_with_the_public_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    # The verifier jwt mode builds: the issuer's public key, asymmetric algorithms only.
    jwt_mode = TokenVerifier(key=RSA_PUBLIC_PEM, algorithms=["RS256"], issuer=ISSUER, audience=AUDIENCE)
    app.dependency_overrides[get_verifier] = lambda: jwt_mode
    forged = hand_signed({"alg": "HS256", "typ": "JWT"}, claims(role="admin"), hmac_key=RSA_PUBLIC_PEM)
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(forged)), "invalid_token")


async def test_local_mode_refuses_asymmetric_algorithms(client: httpx.AsyncClient) -> None:
    forged = hand_signed({"alg": "RS256", "typ": "JWT"}, claims(), hmac_key=b"whatever")
    assert_unauthorized(await client.get("/probe/whoami", headers=bearer(forged)), "invalid_token")


def test_jwt_mode_needs_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jwt_public_key_file"):
        GatewaySettings(data_dir=tmp_path, auth_mode="jwt")


def test_jwt_mode_accepts_only_asymmetric_algorithms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jwt_algorithms"):
        GatewaySettings(
            data_dir=tmp_path, auth_mode="jwt", jwt_public_key_file=tmp_path / "k.pem", jwt_algorithms=["HS256"]
        )


class TestJwtModeWithRsaKeys:
    @pytest.fixture
    def rsa_keys(self) -> tuple[Any, bytes]:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return private_key, public_pem

    @pytest.fixture
    async def jwt_client(self, tmp_path: Path, rsa_keys: tuple[Any, bytes]) -> AsyncIterator[httpx.AsyncClient]:
        key_file = tmp_path / "issuer.pem"
        key_file.write_bytes(rsa_keys[1])
        settings = GatewaySettings(
            data_dir=tmp_path,
            auth_mode="jwt",
            jwt_public_key_file=key_file,
            jwt_issuer="https://idp.example",
        )
        app = create_app(settings, clients=NoPeers())
        add_probe_routes(app)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            yield client

    async def test_rs256_token_is_accepted(self, jwt_client: httpx.AsyncClient, rsa_keys: tuple[Any, bytes]) -> None:
        token = jwt.encode(claims(iss="https://idp.example", role="agent"), rsa_keys[0], algorithm="RS256")
        response = await jwt_client.get("/probe/whoami", headers=bearer(token))
        assert response.status_code == 200
        assert response.json()["role"] == "agent"

    async def test_hs256_signed_with_the_public_key_is_401(
        self, jwt_client: httpx.AsyncClient, rsa_keys: tuple[Any, bytes]
    ) -> None:
        forged = hand_signed(
            {"alg": "HS256", "typ": "JWT"}, claims(iss="https://idp.example", role="admin"), hmac_key=rsa_keys[1]
        )
        assert_unauthorized(await jwt_client.get("/probe/whoami", headers=bearer(forged)), "invalid_token")
