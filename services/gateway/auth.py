"""Bearer-token authentication and role checks.

- local mode: HS256 tokens signed with the local secret (see ``tokens``); only HS256 is accepted.
- jwt mode: tokens of an external issuer, verified with its PEM public key or with the key its JWKS URL
  publishes under the token's ``kid`` (see ``jwks``); only the configured asymmetric algorithms
  (RS256/ES256) are accepted, and a JWKS key only with its own algorithm, so an HS256 token "signed" with
  the public key is refused (algorithm confusion), as is ``alg: none``.

``iss``, ``aud``, ``exp`` and ``sub`` are required and checked; the role comes from the ``role`` claim.
A token that passed is remembered (``token_cache``) until its expiry or a minute, whichever comes first.
Failures answer 401 with ``WWW-Authenticate: Bearer`` and code ``unauthenticated`` (no token),
``token_expired`` or ``invalid_token``; a valid token whose role may not call the route answers 403
``forbidden``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt import PyJWK

from services.gateway import throttling
from services.gateway.jwks import JwksKeys, UnknownKey
from services.gateway.principal import Principal, Role
from services.gateway.problems import ProblemError
from services.gateway.settings import GatewaySettings
from services.gateway.token_cache import VerifiedTokens
from services.gateway.tokens import LOCAL_ALGORITHM, load_or_create_local_secret

MAX_SUBJECT_LENGTH = 200
# Tolerated clock difference between the token issuer and this host.
LEEWAY_S = 30.0

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT carrying `sub` and `role` (customer, agent, supervisor or admin).",
)


class TokenVerifier:
    """Checks a token's signature and claims; knows nothing about HTTP."""

    def __init__(
        self,
        *,
        key: bytes | JwksKeys,
        algorithms: Sequence[str],
        issuer: str,
        audience: str,
        verified: VerifiedTokens | None = None,
    ) -> None:
        if not algorithms:
            raise ValueError("at least one algorithm is required")
        self._key = key
        self._algorithms = list(algorithms)
        self._issuer = issuer
        self._audience = audience
        self._verified = verified if verified is not None else VerifiedTokens(max_entries=0, max_age_s=1.0)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._algorithms)

    async def verify(self, token: str) -> Principal:
        principal = self._verified.get(token)
        if principal is None:
            principal, expires_at = await self._verify(token)
            self._verified.put(token, principal, valid_until=expires_at + LEEWAY_S)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        """The caller and the token's ``exp``, after every check of signature and claims."""
        key = self._key if isinstance(self._key, bytes) else await self._published_key(self._key, token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid_token("token_expired", "The token has expired.") from None
        except jwt.PyJWTError:
            raise _invalid_token("invalid_token", "The token is invalid.") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
            raise _invalid_token("invalid_token", "The token's subject is invalid.")
        role_claim = claims.get("role")
        try:
            role = Role(role_claim) if isinstance(role_claim, str) else None
        except ValueError:
            role = None
        if role is None:
            raise _invalid_token("invalid_token", "The token carries no known role.")
        # PyJWT has checked that exp is a number.
        return Principal(subject=subject, role=role), float(claims["exp"])

    async def _published_key(self, keys: JwksKeys, token: str) -> PyJWK:
        """The key the token's (not yet trusted) header names; the signature check follows."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid_token("invalid_token", "The token is invalid.") from None
        if header.get("alg") not in self._algorithms:
            # Refused before any key look-up, so forged tokens never make the gateway fetch keys.
            raise _invalid_token("invalid_token", "The token is invalid.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid_token("invalid_token", "The token names no signing key (kid).")
        try:
            return await keys.key_for(kid)
        except UnknownKey:
            raise _invalid_token("invalid_token", "The token's signing key is unknown.") from None


def build_verifier(settings: GatewaySettings) -> TokenVerifier:
    """The verifier for the configured mode; reads (or in local mode creates) the key file."""
    verified = VerifiedTokens(
        max_entries=settings.jwt_verified_cache_size, max_age_s=settings.jwt_verified_cache_max_age_s
    )
    if settings.auth_mode == "local":
        return TokenVerifier(
            key=load_or_create_local_secret(settings.local_secret_path),
            algorithms=[LOCAL_ALGORITHM],
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            verified=verified,
        )
    if settings.jwt_jwks_url is not None:
        keys = JwksKeys(
            settings.jwt_jwks_url,
            lifespan_s=settings.jwt_jwks_cache_s,
            timeout_s=settings.jwt_jwks_timeout_s,
            cooldown_s=settings.jwt_jwks_refresh_cooldown_s,
            retry_after_s=settings.retry_after_s,
        )
        return TokenVerifier(
            key=keys,
            algorithms=settings.jwt_algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            verified=verified,
        )
    assert settings.jwt_public_key_file is not None  # enforced by GatewaySettings
    pem = settings.jwt_public_key_file.read_bytes()
    return TokenVerifier(
        key=pem,
        algorithms=usable_algorithms(pem, settings.jwt_algorithms),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        verified=verified,
    )


def usable_algorithms(pem: bytes, algorithms: Sequence[str]) -> list[str]:
    """The configured algorithms this public key works with; fails at start-up rather than per request."""
    jws = jwt.PyJWS()
    usable = []
    for name in algorithms:
        try:
            jws.get_algorithm_by_name(name).prepare_key(pem)
        except (jwt.InvalidKeyError, ValueError, TypeError):
            continue
        usable.append(name)
    if not usable:
        raise ValueError(f"the public key cannot verify any of {list(algorithms)}")
    return usable


def _invalid_token(code: str, detail: str) -> ProblemError:
    return ProblemError(401, code, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def get_verifier(request: Request) -> TokenVerifier:  # async: no thread-pool hop (see deps)
    verifier = request.app.state.verifier
    if not isinstance(verifier, TokenVerifier):
        raise TypeError("app.state.verifier is not configured")
    return verifier


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    verifier: Annotated[TokenVerifier, Depends(get_verifier)],
) -> Principal:
    """The verified caller, charged to its rate budget; callers without a valid token share their address's."""
    if credentials is None or not credentials.credentials:
        throttling.spend(request, throttling.client_address(request))
        raise ProblemError(
            401,
            "unauthenticated",
            "A bearer token is required.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = await verifier.verify(credentials.credentials)
    except ProblemError:
        throttling.spend(request, throttling.client_address(request))
        raise
    throttling.spend(request, throttling.subject_key(principal.subject))
    return principal


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only the given roles (403 for any other authenticated caller)."""
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            raise ProblemError(403, "forbidden", "The caller's role may not do this.")
        return principal

    return dependency


ANY_ROLE = tuple(Role)
STAFF = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
