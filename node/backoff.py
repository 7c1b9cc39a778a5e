"""CrashLoopBackOff: how long a container that keeps exiting waits before its next start (pure).

As the kubelet does: the first restart is immediate, then 10 s, 20 s, 40 s ... up to 5 minutes; a run
that lasted twice the cap without exiting resets the count.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CrashLoopBackOff:
    base: float = 10.0
    cap: float = 300.0
    failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        """The wait before restarting a container that just ran for `ran_for` seconds."""
        if ran_for >= 2 * self.cap:
            self.failures = 0
        delay = 0.0 if self.failures == 0 else min(self.base * 2 ** (self.failures - 1), self.cap)
        self.failures += 1
        return delay
