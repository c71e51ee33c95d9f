"""CrashLoopBackOff: how long a failed container waits before its next restart.

As the kubelet's flowcontrol.Backoff keyed by pod and container: no wait for the first restart,
then 10 s doubling to 300 s; a container that ran for 10 minutes resets its back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

INITIAL, MAXIMUM, RESET_AFTER = 10.0, 300.0, 600.0


class RestartBackoff:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last restart time)

    def __repr__(self) -> str:
        return f"<RestartBackoff entries={len(self._entries)}>"

    def remaining(self, key: str, exited_at: float = 0.0) -> float:
        """Seconds left before `key` may restart (0: now).

        The wait counts from when the container exited (`exited_at`, seconds since the epoch),
        as the kubelet's IsInBackOffSince(finishedAt) does, or else from the last restart; a
        container that exited 10 minutes or more after its last restart may restart at once."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        delay, last = entry
        if exited_at - last >= RESET_AFTER:
            return 0.0
        return max(0.0, max(last, exited_at) + delay - self.clock())

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry[0] if entry else INITIAL

    def restarted(self, key: str, ran_for: float) -> None:
        """Record a restart now; `ran_for` is how long the previous run lasted (seconds)."""
        entry = self._entries.get(key)
        if entry is None or ran_for >= RESET_AFTER:
            self._entries[key] = (INITIAL, self.clock())
        else:
            self._entries[key] = (min(entry[0] * 2, MAXIMUM), self.clock())

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._entries if k.startswith(f"{uid}/")]:
            del self._entries[key]
