"""How a search keeps to its time and stops: the clock, and the two exceptions that leave every loop at once.

`verify` (verifier.py) catches both: `OutOfTime` ends the search with what it has decided so far,
`Found` ends it with a counterexample that has passed `check_point` on the original network.
"""

from __future__ import annotations

import time

from ..core.check import Counterexample


class Clock:
    """The wall-clock budget of one `verify` call."""

    def __init__(self, timeout: float):
        self.start = time.perf_counter()
        self.deadline = self.start + max(float(timeout), 0.0)

    def left(self) -> float:
        """Seconds to the deadline (negative once it has passed)."""
        return self.deadline - time.perf_counter()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.left() <= 0.0

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self.start


class OutOfTime(Exception):
    """Raised where the time left cannot buy the next step."""


class Found(Exception):
    """Raised when a counterexample re-checks, to leave every loop at once."""

    def __init__(self, ce: Counterexample, how: str):
        self.ce, self.how = ce, how
