"""A child gated on READY=1 from a `$NOTIFY_SOCKET` of its own; `pinnace <daemon>` as one.

The Pinnace daemons (controller-manager, cloud-controller-manager, scheduler, agent, netproxy)
tell systemd READY=1 once their caches are synced, a leader-elected one also once it knows
another instance leads (controlplane.api.sdnotify). A `NotifiedProcess` hands its child a
`NotifySocket`, as systemd does for `Type=notify`, so the caller waits on that instead of a line
in the log; `status` is the last STATUS= line ("leading; caches synced", "standby; X leads").
Each `start()` makes a fresh socket, so a restarted child must say READY=1 again.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pinnace.local.notify import MAX_PATH, NotifySocket
from pinnace.local.process import Process


class NotifiedProcess(Process):
    """A `Process` whose readiness is the READY=1 its child sends to its own notify socket."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *,
                 netns: str | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(name, argv, log_path, netns=netns, env=env)
        self.extra_env = dict(env or {})
        self.notify: NotifySocket | None = None

    def notify_path(self) -> Path:
        """Beside the log; in the temp directory when that path is too long for AF_UNIX."""
        path = self.log_path.with_name(f"{self.name}.notify")
        if len(str(path).encode()) > MAX_PATH:
            path = Path(tempfile.gettempdir()) / f"pn-{os.getpid()}-{self.name}.notify"
        return path

    def start(self) -> None:
        self._close_notify()
        self.notify = NotifySocket(self.notify_path())
        self.env = {**self.extra_env, **self.notify.env}
        super().start()

    @property
    def ready(self) -> bool:
        """READY=1 heard since the last `start()`."""
        return self.notify is not None and self.notify.ready

    @property
    def status(self) -> str:
        """The last STATUS= line heard ("" before any)."""
        return self.notify.status if self.notify is not None else ""

    def wait_notified(self, timeout: float = 30.0, *, status: str = "") -> str:
        """Wait for READY=1 (and a STATUS= line starting with `status`: "leading" waits until a
        leader-elected daemon leads) and return the status; ComponentError (with the log's
        tail) when the child exits first or `timeout` passes."""
        self.wait_ready(lambda: self.ready and self.status.startswith(status), timeout)
        return self.status

    def stop(self, grace: float = 10.0) -> None:
        try:
            super().stop(grace)
        finally:
            self._close_notify()

    def _close_notify(self) -> None:
        if self.notify is not None:
            self.notify.close()  # keeps ready/status readable after the stop


class PinnaceDaemon(NotifiedProcess):
    """`python -m pinnace <daemon> <args>` (this checkout's); `python` may wrap the interpreter
    (e.g. `python -m cProfile -o FILE`)."""

    def __init__(self, daemon: str, args: Sequence[str], log_path: Path, *, name: str = "",
                 netns: str | None = None, python: Sequence[str] = (sys.executable,)) -> None:
        super().__init__(name or daemon, [*python, "-m", "pinnace", daemon, *args], log_path,
                         netns=netns)
        self.daemon = daemon
