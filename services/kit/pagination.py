"""AIP-158 style pagination: bounded page sizes and opaque page tokens carrying a keyset cursor."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from services.kit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("invalid_argument", "page_size: must not be negative", field="page_size")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    """The cursor in ``token``, None for the first page; InvalidArgument if it was not one of ours."""
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        cursor = None
    if not isinstance(cursor, dict):
        raise InvalidArgument("invalid_page_token", "page_token: not a token from a previous page", field="page_token")
    return cursor
