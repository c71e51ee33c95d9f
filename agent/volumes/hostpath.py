"""hostPath volumes: the kubelet's type check, and nothing else (the node's files are never ours).

`type` "" (or absent) checks nothing; DirectoryOrCreate and FileOrCreate create what is missing
(a 0755 directory with its parents; an empty 0644 file, whose directory must exist); the other
types check what stat(2) sees behind the path (symlinks followed). Failures carry Kubernetes'
messages, e.g. `hostPath type check failed: /srv is not a directory`. Blocking; run in a thread.
"""

from __future__ import annotations

import os
import stat

from agent.volumes.errors import SourceError

_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def _go_error(op: str, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{op} {exc.filename or ''}: {reason[:1].lower()}{reason[1:]}"


def _mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def check_host_path(path: str, kind: str | None) -> None:
    """Check (and for the *OrCreate types, create) what a hostPath volume points at."""
    if not kind:
        return
    if kind == "DirectoryOrCreate":
        if _mode(path) is None:
            try:
                os.makedirs(path, 0o755, exist_ok=True)
            except OSError as exc:
                raise SourceError(_go_error("mkdir", exc)) from exc
            return
        kind = "Directory"
    elif kind == "FileOrCreate":
        if _mode(path) is None:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o644))
            except OSError as exc:
                raise SourceError(_go_error("open", exc)) from exc
            return
        kind = "File"
    if kind not in _CHECKS:
        raise SourceError(f"{kind} is an invalid volume type")
    test, what = _CHECKS[kind]
    mode = _mode(path)
    if mode is None or not test(mode):
        raise SourceError(f"hostPath type check failed: {path} is not {what}")
