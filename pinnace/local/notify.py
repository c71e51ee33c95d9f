"""The systemd side of sd_notify, for `pinnace up`: a socket per child, READY=1 as its gate.

`pinnace up` starts each daemon with the flags its systemd unit uses, and, as systemd does for
`Type=notify`, hands it `$NOTIFY_SOCKET`: the daemon reports READY=1 once its caches are synced
(controlplane.api.sdnotify). A `NotifySocket` is a bound AF_UNIX datagram socket read by a
thread; `ready` turns True when READY=1 arrives and `status` keeps the last STATUS= line. Path
sockets (not abstract ones) so that daemons inside a node's network namespace reach it too.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)
MAX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class NotifySocket:
    """One child's notification socket at `path` (removed by `close`)."""

    def __init__(self, path: Path) -> None:
        if len(str(path).encode()) > MAX_PATH:
            raise ValueError(f"notify socket path too long for AF_UNIX: {path}")
        self.path = path
        self.ready = False
        self.stopping = False
        self.status = ""
        self._got = threading.Event()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind(str(path))
        self._reader = threading.Thread(target=self._read, name=f"notify {path.name}",
                                        daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<NotifySocket {self.path} ready={self.ready} status={self.status!r}>"

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path)}

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                return  # closed
            self.handle(data)

    def handle(self, data: bytes) -> None:
        """Apply one datagram (newline-separated KEY=VALUE fields)."""
        for line in data.decode(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key == "READY" and value == "1":
                self.ready = True
            elif key == "STOPPING" and value == "1":
                self.stopping = True
            elif key == "STATUS":
                self.status = value
        self._got.set()

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)
