"""When to try a webhook delivery again: the Standard Webhooks retry schedule.

Receivers that follow the spec expect roughly this cadence, so an outage of up to about three
days loses nothing. Jitter spreads retries after a shared outage so a recovering receiver is
not hit by every queued message in the same second.
"""

from __future__ import annotations

import random
from typing import Protocol

# Delay before attempt n+1 (index n): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
# 20 h, 24 h. After len(SCHEDULE_S) attempts the delivery has failed for good.
SCHEDULE_S: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_ATTEMPTS = len(SCHEDULE_S)
RETRY_AFTER_CAP_S = 86400.0


class Uniform(Protocol):
    """Anything with ``uniform`` (the ``random`` module, a seeded ``random.Random``)."""

    def uniform(self, a: float, b: float) -> float: ...


def next_delay(
    attempts_made: int, *, scale: float = 1.0, jitter: float = 0.1, rng: Uniform = random
) -> float | None:
    """Seconds to wait before the next attempt, or None when every attempt is spent.

    ``scale`` shrinks the whole schedule (tests, demos); ``jitter`` is the ± fraction applied.
    """
    if attempts_made < 0:
        raise ValueError("attempts_made cannot be negative")
    if scale < 0:
        raise ValueError("scale cannot be negative")
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be a fraction in [0, 1)")
    if attempts_made >= MAX_ATTEMPTS:
        return None
    delay = SCHEDULE_S[attempts_made] * scale
    if jitter and delay:
        delay *= 1 + rng.uniform(-jitter, jitter)
    return max(0.0, float(delay))


def honour_retry_after(
    delay: float, retry_after_s: float | None, cap_s: float = RETRY_AFTER_CAP_S
) -> float:
    """Wait at least as long as the receiver asked (``Retry-After``), but never past ``cap_s``.

    The cap stops a hostile or broken receiver from parking a delivery forever; a shorter
    Retry-After never makes genq retry sooner than its own schedule.
    """
    if retry_after_s is None:
        return delay
    return max(delay, min(max(retry_after_s, 0.0), cap_s))
