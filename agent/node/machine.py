"""What the node agent measures about its machine: identity, capacity and the eviction signals.

`Machine` is the one side-effect interface here (procfs, sysfs, statvfs); `HostMachine` reads the
real machine and `FakeMachine` is the in-package fake unit tests drive. Values are read where the
kubelet (through cAdvisor) reads them: MemTotal/MemAvailable from /proc/meminfo, the pid limit as
min(pid_max, threads-max) and the running count as the thread total of /proc/loadavg (what
sysinfo's procs counts), the OS image as PRETTY_NAME of /etc/os-release. Every read is blocking
and cheap; callers on the event loop go through `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Go's GOARCH for Python's platform.machine(): what kubernetes.io/arch and nodeInfo report.
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def go_arch(machine: str | None = None) -> str:
    """Return the Go architecture name of `machine` (this machine's by default)."""
    name = machine if machine is not None else platform.machine()
    return _GOARCH.get(name.lower(), name.lower())


@dataclass(frozen=True)
class SystemInfo:
    """The parts of status.nodeInfo that come from the machine, not from the runtime."""

    machine_id: str = ""
    system_uuid: str = ""
    boot_id: str = ""
    kernel_version: str = ""
    os_image: str = ""
    architecture: str = "amd64"


@dataclass(frozen=True)
class FsStats:
    """One filesystem from statvfs: bytes and inodes, total and available to us."""

    capacity_bytes: int
    available_bytes: int
    inodes: int
    inodes_free: int


@dataclass(frozen=True)
class Sample:
    """One measurement of everything the node status needs that changes over time."""

    cpus: int
    memory_total: int  # bytes
    memory_available: int  # bytes
    nodefs: FsStats | None
    imagefs: FsStats | None
    pid_max: int
    pids_running: int


class Machine(Protocol):
    def system_info(self) -> SystemInfo:
        """Return the machine's identity (read once per status computation; cheap)."""
        ...

    def sample(self, nodefs: Path, imagefs: str) -> Sample:
        """Measure now; `nodefs` is the agent's root dir, `imagefs` containerd's image mount
        ("" when unknown)."""
        ...


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def meminfo(text: str) -> dict[str, int]:
    """Parse /proc/meminfo into bytes per field."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def os_release_pretty_name(text: str) -> str:
    """Return PRETTY_NAME of an os-release file, unquoted ("Linux" when absent, as cAdvisor)."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip("\"'")
    return "Linux"


def statvfs(path: str | Path) -> FsStats | None:
    """Return the filesystem holding `path`, or None when it cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return FsStats(capacity_bytes=st.f_blocks * st.f_frsize,
                   available_bytes=st.f_bavail * st.f_frsize,
                   inodes=st.f_files, inodes_free=st.f_ffree)


class HostMachine:
    """The machine this process runs on."""

    def __repr__(self) -> str:
        return "<HostMachine>"

    def system_info(self) -> SystemInfo:
        machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
        system_uuid = (_read("/sys/class/dmi/id/product_uuid")
                       or _read("/proc/device-tree/system-id").rstrip("\x00"))
        return SystemInfo(
            machine_id=machine_id, system_uuid=system_uuid,
            boot_id=_read("/proc/sys/kernel/random/boot_id"),
            kernel_version=os.uname().release,
            os_image=os_release_pretty_name(_read("/etc/os-release")
                                            or _read("/usr/lib/os-release")),
            architecture=go_arch(),
        )

    def sample(self, nodefs: Path, imagefs: str) -> Sample:
        memory = meminfo(_read("/proc/meminfo"))
        limits = [int(v) for v in (_read("/proc/sys/kernel/pid_max"),
                                   _read("/proc/sys/kernel/threads-max")) if v.isdigit()]
        loadavg = _read("/proc/loadavg").split()
        running = loadavg[3].partition("/")[2] if len(loadavg) > 3 else ""
        return Sample(
            cpus=len(os.sched_getaffinity(0)),
            memory_total=memory.get("MemTotal", 0),
            memory_available=memory.get("MemAvailable", memory.get("MemFree", 0)),
            nodefs=statvfs(nodefs),
            imagefs=statvfs(imagefs) if imagefs else None,
            pid_max=min(limits) if limits else 0,
            pids_running=int(running) if running.isdigit() else 0,
        )


GI = 1024 ** 3


@dataclass
class FakeMachine:
    """A machine whose measurements a test sets: change a field, the next sample sees it."""

    info: SystemInfo = field(default_factory=lambda: SystemInfo(
        machine_id="m-1", system_uuid="u-1", boot_id="b-1", kernel_version="6.1.0-test",
        os_image="Debian GNU/Linux 12 (bookworm)", architecture="amd64"))
    cpus: int = 2
    memory_total: int = 8 * GI
    memory_available: int = 6 * GI
    nodefs: FsStats | None = field(default_factory=lambda: FsStats(100 * GI, 60 * GI,
                                                                     1_000_000, 900_000))
    imagefs: FsStats | None = None  # None: the image filesystem is not measured
    pid_max: int = 32768
    pids_running: int = 200
    samples: list[tuple[Path, str]] = field(default_factory=list)

    def system_info(self) -> SystemInfo:
        return self.info

    def sample(self, nodefs: Path, imagefs: str) -> Sample:
        self.samples.append((nodefs, imagefs))
        return Sample(cpus=self.cpus, memory_total=self.memory_total,
                      memory_available=self.memory_available, nodefs=self.nodefs,
                      imagefs=self.imagefs if imagefs else None, pid_max=self.pid_max,
                      pids_running=self.pids_running)
