"""Per-caller rate limits: the generic cell rate algorithm (GCRA), in memory. Pure: no HTTP, no clock reads.

A policy allows ``quota`` requests per ``window_ns``, all at once if the caller was idle (a burst of the
whole quota) and then one every ``window_ns / quota``. GCRA keeps one integer per caller, the theoretical
arrival time (TAT) of its next request, instead of a log of past requests; a caller whose TAT has passed
is exactly as if it had never called, so such entries are swept away and memory follows the active
callers only. Integer nanoseconds keep the arithmetic exact.

Not thread-safe: the gateway calls it from its event loop only, where ``hit`` runs without interruption.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    # Requests the caller may still make at once.
    remaining: int
    # Nanoseconds until the whole quota is available again.
    reset_ns: int
    # Nanoseconds until the next request would be allowed; 0 when this one was.
    retry_after_ns: int


class Gcra:
    """One policy's state for every caller it has seen recently."""

    def __init__(self, *, quota: int, window_ns: int) -> None:
        if quota <= 0 or window_ns <= 0:
            raise ValueError("quota and window must be positive")
        self.quota = quota
        self.window_ns = window_ns
        # The time one request "costs"; the window holds `quota` of them.
        self._interval_ns = max(1, window_ns // quota)
        self._tat: dict[str, int] = {}
        self._next_sweep_ns: int | None = None

    def hit(self, key: str, now_ns: int) -> Decision:
        """Count a request by ``key`` at ``now_ns`` (a monotonic clock) if the policy allows it."""
        self._sweep(now_ns)
        tat = max(self._tat.get(key, now_ns), now_ns)
        new_tat = tat + self._interval_ns
        allowed_from = new_tat - self.window_ns
        if now_ns < allowed_from:
            return Decision(allowed=False, remaining=0, reset_ns=tat - now_ns, retry_after_ns=allowed_from - now_ns)
        self._tat[key] = new_tat
        remaining = (now_ns + self.window_ns - new_tat) // self._interval_ns
        return Decision(allowed=True, remaining=remaining, reset_ns=new_tat - now_ns, retry_after_ns=0)

    def __len__(self) -> int:
        return len(self._tat)

    def _sweep(self, now_ns: int) -> None:
        """Once a window, forget callers that are back to a full quota; amortised O(1) per hit."""
        if self._next_sweep_ns is None:
            self._next_sweep_ns = now_ns + self.window_ns
        if now_ns < self._next_sweep_ns:
            return
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now_ns}
        self._next_sweep_ns = now_ns + self.window_ns
