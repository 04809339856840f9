"""Gateway settings, read from ``SUPPORTDESK_*`` environment variables by the entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from services.kit.settings import CommonSettings

# Only asymmetric algorithms are accepted from an external issuer: a shared-secret algorithm there would
# let anyone holding the (public) verification key mint tokens.
JwtAlgorithm = Literal["RS256", "ES256"]
_DEFAULT_ALGORITHMS: list[JwtAlgorithm] = ["RS256"]


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string, the two forms operators actually write."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class GatewaySettings(CommonSettings):
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)

    ticketing_addr: str = "127.0.0.1:50051"
    routing_addr: str = "127.0.0.1:50052"
    notify_addr: str = "127.0.0.1:50053"

    auth_mode: Literal["local", "jwt"] = "local"
    jwt_issuer: str = "supportdesk-local"
    jwt_audience: str = "supportdesk"
    # Local mode: HS256 secret shared with the token-minting command; None means data_dir/secrets/local-jwt.key.
    local_jwt_secret_file: Path | None = None
    # JWT mode: PEM public key of the identity provider, or the URL of its JWKS (one of the two).
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = Field(default=None, pattern=r"^https?://")
    # How long a fetched key set is trusted before it is fetched again.
    jwt_jwks_cache_s: float = Field(default=300.0, gt=0)
    # Short: a request waiting for keys waits this long at most before its 503.
    jwt_jwks_timeout_s: float = Field(default=2.0, gt=0)
    # At most one refetch per this many seconds for tokens naming a key id not in the cached set.
    jwt_jwks_refresh_cooldown_s: float = Field(default=30.0, ge=0)
    jwt_algorithms: Annotated[list[JwtAlgorithm], NoDecode] = Field(default_factory=lambda: list(_DEFAULT_ALGORITHMS))
    # Tokens that passed verification, kept so their next requests skip it (ADR 0017): how many, and for
    # how long at most (a token never outlives its own exp); 0 entries verifies every request.
    jwt_verified_cache_size: int = Field(default=10_000, ge=0)
    jwt_verified_cache_max_age_s: float = Field(default=60.0, gt=0)

    # Deadline of a request: every gRPC call made while serving it shares what is left of it.
    request_timeout_s: float = Field(default=5.0, gt=0)
    # Deadline of each readiness probe; short so a load balancer's check never queues behind a slow peer.
    readiness_timeout_s: float = Field(default=1.0, gt=0)
    # Sent as Retry-After on 503 and 429 answers.
    retry_after_s: int = Field(default=2, ge=0)
    # Ticket creations arriving together share one call to ticketing (ADR 0069): at most this many calls in
    # flight (a create that finds fewer is sent at once, alone), each carrying at most `create_batch_max`.
    create_calls_in_flight: int = Field(default=4, ge=1)
    create_batch_max: int = Field(default=100, ge=1, le=500)
    max_body_bytes: int = Field(default=65536, gt=0)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # NATS for the live stream (/v1/stream); unset, the stream answers 1013 and REST works as before.
    nats_url: str | None = Field(default=None, validation_alias="NATS_URL")
    # Frames a slow socket may have waiting before it is closed (it resumes from its last event id).
    stream_queue_size: int = Field(default=256, ge=1)
    # Per caller and per gateway process (ADR 0012): `reads` GET requests and `writes` other requests per
    # window, each allowed in one burst after a quiet spell. Far above what a person or a console does.
    rate_limit_enabled: bool = True
    rate_limit_reads: int = Field(default=1200, gt=0)
    rate_limit_writes: int = Field(default=300, gt=0)
    rate_limit_window_s: int = Field(default=60, gt=0)
    # Time uvicorn gives in-flight requests after SIGTERM before closing them.
    shutdown_grace_s: int = Field(default=10, ge=0)

    @field_validator("cors_origins", "jwt_algorithms", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return _split_list(value)

    @model_validator(mode="after")
    def _jwt_mode_needs_a_key(self) -> GatewaySettings:
        if self.auth_mode == "jwt" and (self.jwt_public_key_file is None) == (self.jwt_jwks_url is None):
            raise ValueError(
                "auth_mode=jwt needs exactly one of jwt_public_key_file (SUPPORTDESK_JWT_PUBLIC_KEY_FILE)"
                " and jwt_jwks_url (SUPPORTDESK_JWT_JWKS_URL)"
            )
        if self.auth_mode == "jwt" and not self.jwt_algorithms:
            raise ValueError("auth_mode=jwt needs at least one entry in jwt_algorithms")
        return self

    @property
    def local_secret_path(self) -> Path:
        if self.local_jwt_secret_file is not None:
            return self.local_jwt_secret_file
        return self.data_dir / "secrets" / "local-jwt.key"
