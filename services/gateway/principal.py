"""Who is calling: the subject and role a verified token carries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


STAFF_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES
