"""Container logs as the kubelet serves them: CRI log files turned back into plain text.

containerd writes each chunk of a container's output as one line `<RFC3339Nano> <stream> <tag>
<text>`, tag `F` for a full line and `P` for a partial one that the next record continues (long
lines, or output without a newline yet). `LogWriter` joins them back, adds the timestamp prefix
once per logical line when asked (in Go's RFC3339Nano form, trailing zeros trimmed, as kubectl
shows), drops records older than `since` and stops at `limitBytes`. `stream_log` reads a file
from the first of the last `tailLines` lines and, with `follow`, keeps reading while the
container runs, switching to the new file when the log is rotated, and ends once the container
has exited and the file is drained.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from controlplane.api import errors

CHUNK = 64 * 1024
POLL_INTERVAL = 0.1  # seconds between reads at the end of a followed file
RUNNING_CHECK_INTERVAL = 0.5  # seconds between asking the runtime whether the container runs
Write = Callable[[bytes], Awaitable[None]]
IsRunning = Callable[[], Awaitable[bool]]


class LimitReached(Exception):
    """`limitBytes` of output have been written."""


@dataclass(frozen=True)
class LogOptions:
    """The query of a log request (`follow`, `tailLines`, `sinceSeconds`/`sinceTime`,
    `timestamps`, `previous`, `limitBytes`); `since` is absolute."""

    follow: bool = False
    tail_lines: int | None = None
    since: datetime.datetime | None = None
    timestamps: bool = False
    previous: bool = False
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], *,
                   now: datetime.datetime | None = None) -> LogOptions:
        """Parse a request's query; a malformed value is a 400 naming it."""
        now = now or datetime.datetime.now(datetime.UTC)
        since: datetime.datetime | None = None
        if query.get("sinceSeconds"):
            since = now - datetime.timedelta(seconds=_positive(query, "sinceSeconds"))
        elif query.get("sinceTime"):
            since = parse_time(query["sinceTime"])
            if since is None:
                raise errors.BadRequest(f'invalid sinceTime: "{query["sinceTime"]}"')
        return cls(
            follow=_flag(query, "follow"), timestamps=_flag(query, "timestamps"),
            previous=_flag(query, "previous"), since=since,
            tail_lines=_non_negative(query, "tailLines") if query.get("tailLines") else None,
            limit_bytes=_positive(query, "limitBytes") if query.get("limitBytes") else None,
        )


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def _non_negative(query: Mapping[str, str], name: str) -> int:
    try:
        value = int(query[name])
    except ValueError:
        raise errors.BadRequest(f'invalid {name}: "{query[name]}"') from None
    if value < 0:
        raise errors.BadRequest(f"{name}: Invalid value: {value}: must be greater than or "
                                "equal to 0")
    return value


def _positive(query: Mapping[str, str], name: str) -> int:
    value = _non_negative(query, name)
    if value == 0:
        raise errors.BadRequest(f"{name}: Invalid value: 0: must be greater than 0")
    return value


def parse_time(text: str) -> datetime.datetime | None:
    """An RFC 3339 time (any number of fraction digits; `Z` or an offset), or None."""
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def go_rfc3339nano(stamp: str) -> str:
    """`stamp` as Go's RFC3339Nano formats it: trailing zeros of the fraction trimmed."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return stamp
    digits = len(rest) - len(rest.lstrip("0123456789"))
    fraction, zone = rest[:digits].rstrip("0"), rest[digits:]
    return f"{head}.{fraction}{zone}" if fraction else f"{head}{zone}"


@dataclass(frozen=True)
class LogRecord:
    """One line of a CRI log file."""

    timestamp: str
    stream: str
    partial: bool
    text: bytes  # without the line's newline

    @classmethod
    def parse(cls, line: bytes) -> LogRecord | None:
        """Parse `line` (without its newline); None for a line not in the CRI format."""
        parts = line.split(b" ", 3)
        if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
            return None
        tag = parts[2].split(b":", 1)[0]  # tags may carry more after ':'; P/F comes first
        if tag not in (b"P", b"F"):
            return None
        return cls(parts[0].decode("ascii", "replace"), parts[1].decode(), tag == b"P",
                   parts[3] if len(parts) == 4 else b"")


class LogWriter:
    """Turns records into the plain text the kubelet returns; stateful across partial lines."""

    def __init__(self, options: LogOptions, write: Write) -> None:
        self.options = options
        self._write = write
        self._remaining = options.limit_bytes
        self._line_open = False  # the last record written was partial: no prefix for the next

    async def record(self, record: LogRecord) -> None:
        since = self.options.since
        if since is not None:
            when = parse_time(record.timestamp)
            if when is not None and when < since:
                return
        out = record.text if record.partial else record.text + b"\n"
        if self.options.timestamps and not self._line_open:
            out = go_rfc3339nano(record.timestamp).encode() + b" " + out
        self._line_open = record.partial
        await self._emit(out)

    async def _emit(self, data: bytes) -> None:
        if self._remaining is not None:
            data = data[:self._remaining]
            self._remaining -= len(data)
        if data:
            await self._write(data)
        if self._remaining is not None and self._remaining <= 0:
            raise LimitReached


def tail_offset(f: BinaryIO, lines: int) -> int:
    """The offset of the first record of the last `lines` logical lines of the file.

    A logical line ends with an `F` record; the `P` records before it belong to it. Scans
    backwards a chunk at a time, so the tail of a large file reads only its end. Bytes after
    the last newline (a record still being written) are not a line yet.
    """
    end = f.seek(0, os.SEEK_END)
    if lines == 0:
        return end
    position, carry, seen, terminated = end, b"", 0, False
    while position > 0:
        start = max(0, position - CHUNK)
        f.seek(start)
        pieces = (f.read(position - start) + carry).split(b"\n")
        starts = list(itertools.accumulate([len(p) + 1 for p in pieces[:-1]], initial=start))
        first = 1 if start > 0 else 0  # pieces[0] may continue before `start`
        last = len(pieces) if terminated else len(pieces) - 1
        for i in range(last - 1, first - 1, -1):
            record = LogRecord.parse(pieces[i])
            if record is not None and not record.partial:
                seen += 1
                if seen == lines + 1:
                    return starts[i] + len(pieces[i]) + 1
        terminated = terminated or len(pieces) > 1
        carry, position = (pieces[0] if start > 0 else b""), start
    return 0


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


def _rotated(path: Path, f: BinaryIO) -> bool:
    """Whether `path` now names another file than the open one (the log was rotated)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


async def _feed(writer: LogWriter, buffer: bytes, chunk: bytes) -> bytes:
    """Write the complete lines of `buffer + chunk`; return the incomplete rest."""
    *complete, rest = (buffer + chunk).split(b"\n")
    for line in complete:
        record = LogRecord.parse(line)
        if record is not None:
            await writer.record(record)
    return rest


async def stream_log(path: Path, options: LogOptions, write: Write, is_running: IsRunning, *,
                     poll: float = POLL_INTERVAL,
                     check_every: float = RUNNING_CHECK_INTERVAL) -> None:
    """Write the log at `path` per `options`; with `follow`, until the container has exited."""
    writer = LogWriter(options, write)
    f = await asyncio.to_thread(_open, path)
    if f is not None and options.tail_lines is not None:
        f.seek(await asyncio.to_thread(tail_offset, f, options.tail_lines))
    buffer, last_check, stopped = b"", 0.0, False
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await asyncio.to_thread(f.read, CHUNK) if f is not None else b""
            if chunk:
                buffer = await _feed(writer, buffer, chunk)
                continue
            if not options.follow or stopped:
                return
            if f is None or _rotated(path, f):
                fresh = await asyncio.to_thread(_open, path)
                if fresh is not None:  # rotated: finish the old file, go on with the new one
                    if f is not None:
                        await _feed(writer, buffer, await asyncio.to_thread(f.read))
                        f.close()
                    f, buffer = fresh, b""
                    continue
            if loop.time() - last_check >= check_every:
                last_check = loop.time()
                # Once it has stopped, one more read drains what it wrote before exiting.
                stopped = not await is_running()
                if stopped:
                    continue
            await asyncio.sleep(poll)
    except LimitReached:
        return
    finally:
        if f is not None:
            f.close()
