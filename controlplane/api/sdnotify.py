"""systemd's readiness protocol (sd_notify) for every Pinnace daemon.

A unit of `Type=notify` is "activating" until its main process sends `READY=1` as a datagram
to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or an abstract name written with a
leading `@`). Each daemon sends it once its caches are synced (the apiserver once it serves,
a leader-elected daemon once it leads with synced caches or knows another instance leads),
`STATUS=` lines while it works and `STOPPING=1` on the way out. Without `$NOTIFY_SOCKET`
(not under systemd) every call is a no-op, so the daemons call it unconditionally.

It lives in `controlplane.api` because every daemon (apiserver, scheduler, controllers, agent,
netproxy) may import this base package and no other shared one; it imports nothing of ours.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send `fields` ("READY=1", "STATUS=...") to systemd; False when not under systemd.

    Errors (a socket that went away) are logged and swallowed: readiness reporting must
    never take a daemon down.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


class Readiness:
    """Sends READY=1 once, however many times the daemon reaches a ready state."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon
        self.sent = False

    def ready(self, status: str) -> None:
        if self.sent:
            notify(f"STATUS={status}")
            return
        self.sent = True
        log.info("%s ready: %s", self.daemon, status)
        notify("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        notify("STOPPING=1", f"STATUS={self.daemon} stopping")
