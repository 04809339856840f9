"""Verified tokens are remembered, never past their expiry or the maximum age, and only as sent."""

from __future__ import annotations

import time

import jwt
import pytest

from services.gateway.auth import LEEWAY_S, TokenVerifier
from services.gateway.principal import Principal, Role
from services.gateway.problems import ProblemError
from services.gateway.token_cache import VerifiedTokens
from services.gateway.tokens import mint_local_token

pytestmark = pytest.mark.unit

SECRET = b"s" * 32
ISSUER = "supportdesk-local"
AUDIENCE = "supportdesk"
ALICE = Principal(subject="c-1", role=Role.CUSTOMER)
BOB = Principal(subject="c-2", role=Role.CUSTOMER)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_token_answers_until_its_validity_ends() -> None:
    clock = Clock()
    cache = VerifiedTokens(max_entries=10, max_age_s=60, clock=clock)
    cache.put("t", ALICE, valid_until=clock.now + 10)
    clock.now += 9.9
    assert cache.get("t") == ALICE
    clock.now += 0.1
    assert cache.get("t") is None
    assert len(cache) == 0


def test_no_token_is_kept_longer_than_the_maximum_age() -> None:
    clock = Clock()
    cache = VerifiedTokens(max_entries=10, max_age_s=60, clock=clock)
    cache.put("t", ALICE, valid_until=clock.now + 3600)
    clock.now += 60
    assert cache.get("t") is None


def test_the_least_recently_used_token_goes_first() -> None:
    clock = Clock()
    cache = VerifiedTokens(max_entries=2, max_age_s=60, clock=clock)
    cache.put("a", ALICE, valid_until=clock.now + 10)
    cache.put("b", BOB, valid_until=clock.now + 10)
    assert cache.get("a") == ALICE  # "b" is now the least recently used
    cache.put("c", BOB, valid_until=clock.now + 10)
    assert cache.get("b") is None
    assert cache.get("a") == ALICE
    assert cache.get("c") == BOB


def test_no_entries_keeps_nothing() -> None:
    cache = VerifiedTokens(max_entries=0, max_age_s=60)
    cache.put("t", ALICE, valid_until=time.time() + 10)
    assert cache.get("t") is None


def verifier(cache: VerifiedTokens) -> TokenVerifier:
    return TokenVerifier(key=SECRET, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE, verified=cache)


def token(ttl_s: int) -> str:
    return mint_local_token(SECRET, role="customer", subject="c-1", issuer=ISSUER, audience=AUDIENCE, ttl_s=ttl_s)


async def test_the_verifier_keeps_a_token_no_longer_than_its_expiry_allows() -> None:
    clock = Clock()
    cache = VerifiedTokens(max_entries=10, max_age_s=3600, clock=clock)
    sent = token(ttl_s=600)
    assert await verifier(cache).verify(sent) == ALICE
    assert cache.get(sent) == ALICE
    # PyJWT accepts a token until exp + leeway; the cache must not answer for it any longer.
    clock.now += 600 + LEEWAY_S + 1
    assert cache.get(sent) is None


async def test_a_changed_token_is_verified_not_taken_from_the_cache() -> None:
    cache = VerifiedTokens(max_entries=10, max_age_s=60)
    check = verifier(cache)
    sent = token(ttl_s=600)
    assert await check.verify(sent) == ALICE
    header, payload, signature = sent.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(ProblemError) as refused:
        await check.verify(forged)
    assert refused.value.status_code == 401
    assert cache.get(forged) is None


async def test_a_refused_token_is_not_remembered() -> None:
    cache = VerifiedTokens(max_entries=10, max_age_s=60)
    now = int(time.time())
    claims = {"sub": "c-1", "role": "customer", "iss": ISSUER, "aud": AUDIENCE, "iat": now - 7200, "exp": now - 3600}
    expired = jwt.encode(claims, SECRET, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(ProblemError) as refused:
            await verifier(cache).verify(expired)
        assert refused.value.code == "token_expired"
    assert len(cache) == 0
