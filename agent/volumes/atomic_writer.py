"""The kubelet's AtomicWriter: projected files that change all at once, never half-written.

A volume directory holds a timestamped directory `..2024_01_02_03_04_05.<random>` with the
files, a symlink `..data -> ..<ts>`, and for each top-level name `name -> ..data/name`. An
update writes a whole new timestamped directory, points `..data_tmp` at it and renames that
over `..data` (rename(2) is atomic), then drops the visible links of names that went away and
removes the old directory. A reader inside a container therefore sees either the old or the
new set of files. Files are compared by content, as Kubernetes does: when nothing changed
nothing is written. Everything here is blocking; callers run it in a thread.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.volumes.errors import SourceError

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
MAX_PATH_LENGTH = 4096
MAX_NAME_LENGTH = 255
_TS_DIR = re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[^/]+")


@dataclass(frozen=True)
class FileProjection:
    """One file of a volume: its bytes and its permission bits."""

    data: bytes
    mode: int


def validate_path(path: str) -> None:
    """Refuse a payload path that is empty, absolute, too long or climbs out (Kubernetes' rules)."""
    if path == "":
        raise SourceError(f'invalid path: must not be empty: "{path}"')
    if path.startswith("/"):
        raise SourceError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH_LENGTH:
        raise SourceError(f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} "
                          "characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise SourceError(f"invalid path: must not contain '..': {path}")
        if len(item) > MAX_NAME_LENGTH:
            raise SourceError(f"invalid path: filenames must be less than or equal to "
                              f"{MAX_NAME_LENGTH} characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise SourceError(f"invalid path: must not start with '..': {path}")


def clean_payload(payload: Mapping[str, FileProjection]) -> dict[str, FileProjection]:
    """The payload with every path validated and normalised."""
    clean: dict[str, FileProjection] = {}
    for path, projection in payload.items():
        validate_path(path)
        clean[posixpath.normpath(path)] = projection
    return clean


class AtomicWriter:
    """Writes the payloads of one volume directory; one writer per directory at a time."""

    def __init__(self, target_dir: Path) -> None:
        self.target_dir = target_dir

    def __repr__(self) -> str:
        return f"<AtomicWriter {self.target_dir}>"

    def current(self) -> Path | None:
        """The timestamped directory `..data` points at, if any."""
        try:
            name = os.readlink(self.target_dir / DATA_DIR)
        except FileNotFoundError:
            return None
        return self.target_dir / name if _TS_DIR.fullmatch(name) else None

    def write(self, payload: Mapping[str, FileProjection],
              set_perms: Callable[[Path], None] | None = None) -> bool:
        """Make the directory show exactly `payload`; return whether anything changed.

        `set_perms` is called on the new timestamped directory before it becomes visible.
        """
        clean = clean_payload(payload)
        old = self.current()
        to_remove: set[str] = set()
        if old is not None:
            to_remove = _paths_to_remove(clean, old)
            if not to_remove and not _should_write(clean, old):
                old = None  # up to date; only make sure the visible links exist
                changed = False
            else:
                self._swap_in(clean, set_perms)
                changed = True
        else:
            self._swap_in(clean, set_perms)
            changed = True
        changed |= self._create_user_visible(clean)
        for path in to_remove:
            if "/" not in path:
                (self.target_dir / path).unlink(missing_ok=True)
        if old is not None:
            shutil.rmtree(old)
        self._remove_stale()
        return changed

    def _swap_in(self, payload: Mapping[str, FileProjection],
                 set_perms: Callable[[Path], None] | None) -> None:
        prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        ts_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.target_dir))
        try:
            os.chmod(ts_dir, 0o755)
            _write_payload(payload, ts_dir)
            if set_perms is not None:
                set_perms(ts_dir)
            new_link = self.target_dir / NEW_DATA_DIR
            if os.path.lexists(new_link):
                new_link.unlink()
            os.symlink(ts_dir.name, new_link)
            os.rename(new_link, self.target_dir / DATA_DIR)
        except BaseException:
            shutil.rmtree(ts_dir, ignore_errors=True)
            raise

    def _create_user_visible(self, payload: Mapping[str, FileProjection]) -> bool:
        created = False
        for top in sorted({path.split("/", 1)[0] for path in payload}):
            link = self.target_dir / top
            if not os.path.lexists(link):
                os.symlink(posixpath.join(DATA_DIR, top), link)
                created = True
        return created

    def _remove_stale(self) -> None:
        """Drop timestamped directories an interrupted write left behind."""
        current = self.current()
        for entry in os.scandir(self.target_dir):
            if (_TS_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
                    and (current is None or entry.name != current.name)):
                shutil.rmtree(entry.path)


def _write_payload(payload: Mapping[str, FileProjection], directory: Path) -> None:
    for path, projection in payload.items():
        full = directory / path
        full.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     projection.mode & 0o7777)
        with os.fdopen(fd, "wb") as file:
            file.write(projection.data)
            os.fchmod(file.fileno(), projection.mode & 0o7777)  # whatever the umask


def _should_write(payload: Mapping[str, FileProjection], old: Path) -> bool:
    for path, projection in payload.items():
        try:
            with open(old / path, "rb") as file:
                if file.read() != projection.data:
                    return True
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return True
    return False


def _paths_to_remove(payload: Mapping[str, FileProjection], old: Path) -> set[str]:
    """Paths of the old version that the new payload does not have (nor has as a parent)."""
    existing: set[str] = set()
    for root, dirs, files in os.walk(old):
        relative = os.path.relpath(root, old)
        for name in (*dirs, *files):
            existing.add(name if relative == "." else posixpath.join(relative, name))
    wanted: set[str] = set()
    for path in payload:
        while path:
            wanted.add(path)
            path = posixpath.dirname(path)
    return existing - wanted
