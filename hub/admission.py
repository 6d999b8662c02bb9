"""Admission: how fast one organisation may send, so that one system's flood cannot starve others.

A token bucket per publisher: ``HUB_INGEST_RATE`` tokens a second, at most ``HUB_INGEST_BURST``
saved up. A message finding the bucket empty is answered ``unavailable`` with the seconds until
the next token, at once: it costs the hub no validation and no write, and nothing is stored (the
quarantine keeps what was judged, not what was turned away unread).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Admission:
    """Token buckets, one per publisher."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, publisher: str) -> float | None:
        """Take a token for ``publisher``; ``None`` when admitted, else seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(publisher)
        if bucket is None:
            bucket = self._buckets[publisher] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate
