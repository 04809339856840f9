"""Protobuf enums (``CATEGORY_PAYMENT_FAILED``) to and from the lowercase names used everywhere else.

Enum wrappers are typed ``Any``: generated stubs give each enum its own wrapper class.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp


def _prefix(wrapper: Any) -> str:
    # Buf style: the zero value is <PREFIX>_UNSPECIFIED and every value shares <PREFIX>_.
    return str(wrapper.DESCRIPTOR.values[0].name).removesuffix("UNSPECIFIED")


def to_proto(wrapper: Any, name: str) -> Any:
    return wrapper.Value(_prefix(wrapper) + name.upper())


def from_proto(wrapper: Any, number: int) -> str | None:
    """The lowercase name, or None for the unspecified zero value; ValueError for an unknown number."""
    if number == 0:
        return None
    return str(wrapper.Name(number)).removeprefix(_prefix(wrapper)).lower()


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)
