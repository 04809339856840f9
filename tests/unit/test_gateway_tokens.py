"""The local signing secret and development tokens."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from services.gateway.tokens import load_or_create_local_secret, mint_local_token

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets" / "local-jwt.key"
    first = load_or_create_local_secret(path)
    assert len(first) == 32
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert load_or_create_local_secret(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["local-jwt.key"]


def test_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "local-jwt.key"
    load_or_create_local_secret(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        load_or_create_local_secret(path)


def test_short_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "local-jwt.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="bytes"):
        load_or_create_local_secret(path)


def test_minted_token_claims(tmp_path: Path) -> None:
    secret = load_or_create_local_secret(tmp_path / "k")
    token = mint_local_token(secret, role="supervisor", subject="s-1", ttl_s=120, issuer="iss", audience="aud")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="aud", issuer="iss")
    assert claims["sub"] == "s-1"
    assert claims["role"] == "supervisor"
    assert claims["exp"] - claims["iat"] == 120
    assert abs(claims["iat"] - time.time()) < 3600


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="root"):
        mint_local_token(b"k" * 32, role="root", subject="x", issuer="i", audience="a")
