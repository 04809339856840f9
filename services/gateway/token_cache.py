"""Tokens already verified, so a client sending the same bearer token again is not verified again.

A client (an app, the agent console) sends one token with every request until it expires; checking its
signature and claims each time was a tenth of the gateway's CPU per request. Only tokens that passed every
check are kept, keyed by the whole token string (signature included, so any change to it misses), and
each one only until the earlier of its own expiry (with the leeway verification allows) and
``max_age_s`` after it was verified, which bounds how long a key withdrawn from the issuer's JWKS keeps
working for tokens seen before (ADR 0017). The least recently used entries go first when full.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from services.gateway.principal import Principal


class VerifiedTokens:
    def __init__(self, *, max_entries: int, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must not be negative")
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        self._clock = clock
        # token -> (principal, wall-clock second after which the entry no longer answers)
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, until = entry
        if self._clock() >= until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal, *, valid_until: float) -> None:
        """Keep ``principal`` for ``token`` until ``valid_until`` (wall clock) or the maximum age."""
        if self._max_entries == 0:
            return
        until = min(valid_until, self._clock() + self._max_age_s)
        self._entries[token] = (principal, until)
        self._entries.move_to_end(token)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
