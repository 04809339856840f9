"""Signing keys of an identity provider, from its JWKS URL (PyJWT's ``PyJWKClient``).

The key set is cached for ``lifespan_s``; a token naming a key id the cache does not hold triggers one
refetch (at most one per ``cooldown_s``, so tokens with made-up key ids cannot make the gateway hammer the
provider). Requests find their key in the cache without leaving the event loop; only a fetch, which
``PyJWKClient`` does with blocking ``urllib``, runs in a worker thread.

If the provider cannot be reached when the cache has expired, the last key set fetched keeps serving (a
provider's brief outage must not log every user out); a key that was never fetched is a 503
``dependency_unavailable`` with ``Retry-After``, never a 500.
"""

from __future__ import annotations

import asyncio
import logging

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from services.gateway.problems import ProblemError, dependency_unavailable

log = logging.getLogger(__name__)


class UnknownKey(Exception):
    """The token names no signing key the provider publishes."""


class _RememberingClient(PyJWKClient):
    """Keeps the last key set fetched after the cache has let it go, for use while the provider is down."""

    last_fetched: PyJWKSet | None = None

    def get_jwk_set(self, refresh: bool = False) -> PyJWKSet:
        jwk_set = super().get_jwk_set(refresh)
        self.last_fetched = jwk_set  # one reference assignment: safe from the worker thread
        return jwk_set


class JwksKeys:
    def __init__(self, url: str, *, lifespan_s: float, timeout_s: float, cooldown_s: float, retry_after_s: int) -> None:
        self._client = _RememberingClient(
            url, cache_jwk_set=True, lifespan=lifespan_s, timeout=timeout_s, cooldown_duration=cooldown_s
        )
        self._retry_after_s = retry_after_s

    async def key_for(self, kid: str) -> PyJWK:
        """The provider's signing key ``kid``; ``UnknownKey`` if it publishes none by that id."""
        cache = self._client.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if cached is not None and (key := _signing_key(cached, kid)) is not None:
            return key
        try:
            key = await asyncio.to_thread(self._client.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            return self._stale_key(kid, exc)
        except jwt.PyJWKClientError as exc:
            # Reached, but the key is not there (or the set has no signing keys at all).
            raise UnknownKey(kid) from exc
        except jwt.PyJWKSetError as exc:
            log.warning("the JWKS endpoint served an unusable key set", extra={"error": str(exc)})
            raise self._unavailable() from exc
        return key

    def _stale_key(self, kid: str, exc: Exception) -> PyJWK:
        log.warning("the JWKS endpoint is unreachable", extra={"error": str(exc)})
        stale = self._client.last_fetched
        if stale is not None and (key := _signing_key(stale, kid)) is not None:
            return key
        raise self._unavailable() from exc

    def _unavailable(self) -> ProblemError:
        return dependency_unavailable(
            self._retry_after_s, "The identity provider's signing keys cannot be fetched; retry later."
        )


def _signing_key(key_set: PyJWKSet, kid: str) -> PyJWK | None:
    for key in key_set.keys:
        if key.key_id == kid and key.public_key_use in ("sig", None):
            return key
    return None
