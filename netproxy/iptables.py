"""The iptables side effect behind one Protocol, and its default backend: iptables-restore.

`IptablesBackend` is all the proxier needs from the kernel's packet filter: one atomic restore of
our chains (`--noflush`, so nothing else is touched), listing chains, and the few single rules in
built-in chains (`-C` then `-A`). `RestoreBackend` drives the iptables binaries (`iptables` is
the nf_tables backend here; `iptables-legacy` works the same way); `netproxy.iptc_backend` is the
python-iptables alternative and `netproxy.fake_iptables` the in-memory fake for unit tests. The
restore text format is parsed once here (`parse_restore`) for the backends that need it.
"""

from __future__ import annotations

import functools
import logging
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class IptablesError(Exception):
    """An iptables command failed; the message says which and why."""


class RestoreError(IptablesError):
    """A restore was rejected; `line` is the failing line (1-based) when iptables said it."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class IptablesBackend(Protocol):
    """The packet filter as the proxier uses it. Calls block: run them off the event loop."""

    name: str

    def restore(self, text: str) -> None:
        """Apply restore text atomically with --noflush; raise RestoreError."""

    def chains(self, table: str) -> set[str]:
        """Every chain of `table` (built-in ones included)."""

    def chain_exists(self, table: str, chain: str) -> bool: ...

    def ensure_chain(self, table: str, chain: str) -> None: ...

    def delete_chain(self, table: str, chain: str) -> None:
        """Flush and delete `chain`; a missing chain is no error."""

    def ensure_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        """Append the rule unless it exists (-C || -A); return True when it was added."""

    def delete_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        """Delete one copy of the rule; return False when there was none."""

    def missing_rules(self, table: str, rules: Sequence[tuple[str, Sequence[str]]]
                      ) -> list[tuple[str, list[str]]]:
        """Those (chain, args) of `rules` that `table` lacks, found by listing, not `-C`."""


def context(text: str, line: int | None, around: int = 3) -> str:
    """The failing line of a restore and `around` lines on each side, numbered."""
    if line is None:
        return ""
    lines = text.splitlines()
    lo, hi = max(0, line - 1 - around), min(len(lines), line + around)
    return "\n".join(f"{'>' if i + 1 == line else ' '}{i + 1:5d}  {lines[i]}"
                     for i in range(lo, hi))


_LINE = re.compile(r"line:? (\d+)")


class RestoreBackend:
    """iptables through its binaries: `<binary>-restore --noflush`, `<binary>-save`, `<binary>`."""

    def __init__(self, binary: str = "iptables", *, timeout: float = 60.0) -> None:
        self.binary = binary
        self.name = f"{binary}-restore"
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<RestoreBackend {self.binary}>"

    def _run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IptablesError(f"{argv[0]}: {exc}") from None

    def restore(self, text: str) -> None:
        result = self._run([f"{self.binary}-restore", "-w", "--noflush"], text)
        if result.returncode != 0:
            message = result.stderr.strip() or f"exit status {result.returncode}"
            match = _LINE.search(message)
            raise RestoreError(f"{self.binary}-restore: {message}",
                               int(match.group(1)) if match else None)

    def chains(self, table: str) -> set[str]:
        result = self._run([f"{self.binary}-save", "-t", table])
        if result.returncode != 0:
            raise IptablesError(f"{self.binary}-save -t {table}: {result.stderr.strip()}")
        return {line[1:].split(" ", 1)[0] for line in result.stdout.splitlines()
                if line.startswith(":")}

    def _iptables(self, table: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([self.binary, "-w", "-t", table, *args])

    def chain_exists(self, table: str, chain: str) -> bool:
        return self._iptables(table, "-S", chain, "1").returncode == 0

    def ensure_chain(self, table: str, chain: str) -> None:
        if not self.chain_exists(table, chain):
            result = self._iptables(table, "-N", chain)
            if result.returncode != 0 and not self.chain_exists(table, chain):
                raise IptablesError(f"{self.binary} -t {table} -N {chain}: "
                                    f"{result.stderr.strip()}")

    def delete_chain(self, table: str, chain: str) -> None:
        if self.chain_exists(table, chain):
            self._iptables(table, "-F", chain)
            result = self._iptables(table, "-X", chain)
            if result.returncode != 0:
                raise IptablesError(f"{self.binary} -t {table} -X {chain}: "
                                    f"{result.stderr.strip()}")

    def ensure_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        if self._iptables(table, "-C", chain, *args).returncode == 0:
            return False
        result = self._iptables(table, "-A", chain, *args)
        if result.returncode != 0:
            raise IptablesError(f"{self.binary} -t {table} -A {chain} {shlex.join(args)}: "
                                f"{result.stderr.strip()}")
        return True

    def delete_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        return self._iptables(table, "-D", chain, *args).returncode == 0

    @functools.cached_property
    def legacy(self) -> bool:
        """Whether the binary drives x_tables (every listing reads the whole table)."""
        return "legacy" in self._run([self.binary, "--version"]).stdout

    def missing_rules(self, table: str, rules: Sequence[tuple[str, Sequence[str]]]
                      ) -> list[tuple[str, list[str]]]:
        # One `-S CHAIN` per chain on nf_tables (a `-C` per rule costs ~10 ms with 8000 rules);
        # one `-S` of the whole table on legacy, which reads the whole table whatever is asked.
        # iptables prints matches in its own order, so rules compare as sorted argument lists.
        chains = sorted({chain for chain, _ in rules})
        listings = [self._iptables(table, "-S")] if self.legacy else \
            [self._iptables(table, "-S", chain) for chain in chains]
        prefixes = tuple(f"-A {chain} " for chain in chains)
        present = {(words[1], tuple(sorted(words[2:])))
                   for listing in listings if listing.returncode == 0
                   for words in map(shlex.split, (line for line in listing.stdout.splitlines()
                                                  if line.startswith(prefixes)))}
        return [(chain, list(args)) for chain, args in rules
                if (chain, tuple(sorted(args))) not in present]


@dataclass
class TableOps:
    """One `*table ... COMMIT` block of restore text."""

    name: str
    declared: list[str] = field(default_factory=list)  # `:CHAIN` lines (create or flush)
    appends: list[tuple[str, list[str], int]] = field(default_factory=list)  # chain, args, line
    deletes: list[str] = field(default_factory=list)  # `-X CHAIN` lines


def parse_restore(text: str) -> list[TableOps]:
    """Split restore text into per-table operations; raise RestoreError on what we never write."""
    tables: list[TableOps] = []
    current: TableOps | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = TableOps(line[1:])
            tables.append(current)
        elif current is None:
            raise RestoreError(f"line {number}: outside a table", number)
        elif line == "COMMIT":
            current = None
        elif line.startswith(":"):
            current.declared.append(line[1:].split()[0])
        elif line.startswith("-A "):
            words = shlex.split(line)
            current.appends.append((words[1], words[2:], number))
        elif line.startswith("-X "):
            current.deletes.append(line.split()[1])
        else:
            raise RestoreError(f"line {number}: unsupported {line[:40]!r}", number)
    if current is not None:
        raise RestoreError("missing COMMIT", None)
    return tables
