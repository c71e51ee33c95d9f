"""A private dockerd for the container tier: its own data-root, exec-root, socket and cgroup parent.

Flags as PLATFORM.md found working here: `--bridge none --iptables=false` (no docker0, no rules
in the host's tables: node traffic only crosses links our tests make). `--cgroup-parent` puts
every container, and the pods nested in it, under one cgroup of ours, so `stop()` can remove
them all. `stop()` ends the daemon by its PID (its managed containerd and shims with it), then
whatever still names our directory, then unmounts and removes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pinnace.local import cleanup

CGROUP_ROOT = Path("/sys/fs/cgroup")  # where unmet() looks for cgroups at all
START_TIMEOUT = 30.0


def unmet() -> str | None:
    """Why dockerd cannot run here (None: it can, as far as we can tell without starting it)."""
    if os.geteuid() != 0:
        return "the container tier needs root to run a private dockerd"
    missing = [b for b in ("dockerd", "containerd", "runc", "ip", "mount") if not shutil.which(b)]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install docker.io): no container tier"
    if not (CGROUP_ROOT / "memory").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
        return "no cgroup filesystem under /sys/fs/cgroup: dockerd cannot run containers here"
    return None


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class PrivateDockerd:
    """One dockerd under `base` (keep it short: unix socket paths), started and stopped by PID."""

    def __init__(self, base: Path, *, cgroup_parent: str) -> None:
        self.base = base
        self.cgroup_parent = cgroup_parent
        self.socket = base / "docker.sock"
        self.log_path = base / "dockerd.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._ip_forward: str | None = None  # dockerd turns the sysctl on: put it back after

    @property
    def host(self) -> str:
        """The DOCKER_HOST of this daemon."""
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return ["dockerd", "--data-root", str(self.base / "data"),
                "--exec-root", str(self.base / "exec"), "-H", self.host,
                "--pidfile", str(self.base / "dockerd.pid"),
                "--bridge", "none", "--iptables=false", "--ip-masq=false",
                "--cgroup-parent", self.cgroup_parent, "--log-level", "warn"]

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._ip_forward is None:
            self._ip_forward = IP_FORWARD.read_text().strip()
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.popen.poll() is not None:
                raise RuntimeError(f"dockerd exited with code {self.popen.returncode}; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not ready after {START_TIMEOUT:.0f}s; "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = s.recv(4096)
        except OSError:
            return False
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        """TERM the daemon (it stops its containers and its containerd), then clean up after it.
        Safe to call twice."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        cleanup.kill_pids(cleanup.pids_referencing(str(self.base)))
        cleanup.unmount_all(self.base)
        remove_cgroups(self.cgroup_parent)
        if self._ip_forward is not None:
            IP_FORWARD.write_text(self._ip_forward)

    def leftovers(self) -> list[str]:
        found = [f"process {pid}" for pid in cleanup.pids_referencing(str(self.base))]
        found += [f"mount {m}" for m in cleanup.mounts_under(self.base)]
        found += [f"cgroup {c}" for c in cgroup_dirs(self.cgroup_parent)]
        return found


def own_cgroups(proc_cgroup: str, mountinfo: str) -> list[Path]:
    """Directories of this process's cgroup in every mounted hierarchy (v1 controllers and v2).

    A relative `--cgroup-parent` is taken by dockerd (cgroupfs driver) relative to its own
    cgroup, which it inherits from us: e.g. memory:/some/limit here puts the containers under
    /sys/fs/cgroup/memory/some/limit/<parent>, inside whatever limit the machine gives us."""
    own: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _hid, controllers, own_path = line.split(":", 2)
        own[controllers] = own_path
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], set(fields[sep + 3].split(","))
        path: str | None
        if fstype == "cgroup2":
            path = own.get("")
        elif fstype == "cgroup":
            path = next((p for c, p in own.items() if c and set(c.split(",")) <= options), None)
        else:
            continue
        root, point = fields[3], fields[4]
        if path is None or not (path == root or path.startswith(root.rstrip("/") + "/")):
            continue
        found.append(Path(point) / path[len(root.rstrip("/")):].lstrip("/"))
    return found


def cgroup_dirs(parent: str) -> list[Path]:
    """The directories of our relative cgroup `parent` that exist, in every hierarchy."""
    with open("/proc/self/cgroup") as f, open("/proc/self/mountinfo") as m:
        mine = own_cgroups(f.read(), m.read())
    return [d / parent for d in mine if (d / parent).is_dir()]


def remove_cgroups(parent: str) -> None:
    """rmdir `parent` and its children, deepest first (the kernel refuses non-empty cgroups:
    a cgroup with a process left is kept, and reported by `leftovers`)."""
    for top in cgroup_dirs(parent):
        for path, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(path)
            except OSError:
                pass
