"""The local-mode signing secret and development tokens signed with it (HS256)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from pathlib import Path

import jwt

from services.gateway.principal import Role

LOCAL_ALGORITHM = "HS256"
SECRET_BYTES = 32


def load_or_create_local_secret(path: Path) -> bytes:
    """Return the secret at ``path``, creating it (32 random bytes, mode 0600) if absent.

    Creation is atomic and never overwrites: the secret is written to a private temporary file and
    hard-linked into place, so two processes starting together agree on one secret.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; the directory must end up private regardless.
        os.chmod(parent, 0o700)
    tmp = parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(SECRET_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the target exists: whoever linked first wins and everyone reads that file.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        raise PermissionError(f"{path} is accessible by other users; restrict it with chmod 600")
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path} holds {len(secret)} bytes; a local signing secret needs {SECRET_BYTES}")
    return secret


def mint_local_token(
    secret: bytes,
    *,
    role: str,
    subject: str,
    ttl_s: int = 3600,
    issuer: str,
    audience: str,
) -> str:
    """A development token the gateway accepts in local mode."""
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    now = int(time.time())
    claims = {
        "sub": subject,
        "role": Role(role).value,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=LOCAL_ALGORITHM)
