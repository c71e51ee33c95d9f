"""The python-iptables backend, for hosts where iptables means the legacy (x_tables) backend.

python-iptables drives libiptc, so its rules live in the legacy tables only (invisible to
iptables-nft). Restore text is applied by parsing it into libiptc rules on a table handle with
autocommit OFF and committing once per table: python-iptables' default autocommit re-reads the
whole table after every rule, which is quadratic (PLATFORM.md: 18 ms per rule at 7000 rules). A
failure before the commit discards the handle, so a table is never left half-written. iptc is
imported on first use: merely importing it loads libiptc.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from typing import Any

from netproxy.iptables import IptablesError, RestoreError, parse_restore

log = logging.getLogger(__name__)
_TARGET_HEADER = 32  # sizeof(struct xt_entry_target) before its data


def _iptc() -> Any:
    import iptc

    return iptc


class IptcBackend:
    """IptablesBackend on python-iptables. Not thread-safe: one sync at a time uses it."""

    name = "python-iptables"

    def __init__(self) -> None:
        self._tables: dict[str, Any] = {}  # table name -> iptc.Table (autocommit off)

    def __repr__(self) -> str:
        return f"<IptcBackend tables={sorted(self._tables)}>"

    def _table(self, name: str) -> Any:
        iptc = _iptc()
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = iptc.Table(name, autocommit=False)
        table.autocommit = False
        table.refresh()  # drop anything uncommitted; read the kernel's current table
        return table

    def restore(self, text: str) -> None:
        iptc = _iptc()
        for ops in parse_restore(text):
            try:
                table = self._table(ops.name)
                for chain in ops.declared:
                    if table.is_chain(chain):
                        table.flush_entries(chain)
                    else:
                        table.create_chain(chain)
                for chain, args, line in ops.appends:
                    try:
                        table.append_entry(chain, rule_of(iptc, args).rule)
                    except (iptc.IPTCError, ValueError, AttributeError) as exc:
                        raise RestoreError(f"line {line}: {exc}", line) from None
                for chain in ops.deletes:
                    table.delete_chain(chain)
                table.commit()
            except iptc.IPTCError as exc:
                raise RestoreError(f"{ops.name}: {exc}") from None
            finally:
                self._tables.pop(ops.name, None)  # a committed or failed handle is not reused

    def chains(self, table: str) -> set[str]:
        return {c.name for c in self._table(table).chains}

    def chain_exists(self, table: str, chain: str) -> bool:
        return bool(self._table(table).is_chain(chain))

    def ensure_chain(self, table: str, chain: str) -> None:
        t = self._table(table)
        if not t.is_chain(chain):
            t.create_chain(chain)
            self._commit(t)

    def delete_chain(self, table: str, chain: str) -> None:
        t = self._table(table)
        if t.is_chain(chain):
            t.flush_entries(chain)
            t.delete_chain(chain)
            self._commit(t)

    def ensure_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        iptc = _iptc()
        t = self._table(table)
        rule = rule_of(iptc, list(args))
        if rule in iptc.Chain(t, chain).rules:
            return False
        t.append_entry(chain, rule.rule)
        self._commit(t)
        return True

    def delete_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        iptc = _iptc()
        t = self._table(table)
        rule = rule_of(iptc, list(args))
        if rule not in iptc.Chain(t, chain).rules:
            return False
        iptc.Chain(t, chain).delete_rule(rule)
        self._commit(t)
        return True

    def missing_rules(self, table: str, rules: Sequence[tuple[str, Sequence[str]]]
                      ) -> list[tuple[str, list[str]]]:
        iptc = _iptc()
        t = self._table(table)
        return [(chain, list(args)) for chain, args in rules
                if rule_of(iptc, list(args)) not in iptc.Chain(t, chain).rules]

    def _commit(self, table: Any) -> None:
        try:
            table.commit()
        except Exception as exc:  # noqa: BLE001 - iptc raises its own IPTCError
            raise IptablesError(f"python-iptables commit of {table.name}: {exc}") from None
        finally:
            self._tables.pop(table.name, None)


def rule_of(iptc: Any, args: list[str]) -> Any:
    """An iptc.Rule from iptables arguments as we write them (-s/-d/-p, -m, -j, --options)."""
    rule = iptc.Rule()
    module: Any = None  # the match or target the next --option belongs to
    negate, i = False, 0
    basic = {"-s": "src", "-d": "dst", "-p": "protocol", "-i": "in_interface",
             "-o": "out_interface"}
    while i < len(args):
        word = args[i]
        if word == "!":
            negate, i = True, i + 1
            continue
        if word in basic:
            setattr(rule, basic[word], ("!" if negate else "") + args[i + 1])
            negate, i = False, i + 2
        elif word == "-m":
            module = rule.create_match(args[i + 1])
            i += 2
        elif word == "-j":
            module = rule.create_target(args[i + 1])
            i += 2
        elif word.startswith("--") and module is not None:
            has_value = i + 1 < len(args) and not args[i + 1].startswith("-") \
                and args[i + 1] != "!"
            value = args[i + 1] if has_value else ""
            module.set_parameter(word[2:], ("!" if negate else "") + value)
            negate, i = False, i + (2 if has_value else 1)
        else:
            raise ValueError(f"unsupported argument {word!r} in {' '.join(args)!r}")
    if rule.target is None or not rule.target.name:
        rule.create_target("")  # a rule without a verdict (counts, comments)
    elif rule.target.name == "MASQUERADE":
        # libxtables' MASQUERADE init (rangesize = 1) is not reached through python-iptables
        # here, and the kernel rejects rangesize 0 with EINVAL: set it in the target's data.
        data = int(ctypes.cast(rule.target._ptr, ctypes.c_void_p).value or 0) + _TARGET_HEADER
        ctypes.c_uint32.from_address(data).value = 1
    return rule
