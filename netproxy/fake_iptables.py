"""An in-memory IptablesBackend and a packet tracer over it, for tests without root or a kernel.

`FakeIptables` keeps tables as {chain: [rule args]} and applies restore text the way the kernel
does with --noflush: declared chains are created or flushed, jumps must name existing chains,
`-X` fails on a chain still referenced, and a failing restore changes nothing. `trace()` walks a
packet through nat and filter as netfilter would (PREROUTING or OUTPUT, DNAT, INPUT/FORWARD,
POSTROUTING masquerade), following both branches of every `-m statistic` rule, so a test can ask
"which endpoints can this packet reach, and is it masqueraded?" (kube-proxy's tracePacket).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from netproxy.iptables import RestoreError, parse_restore

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
TARGETS = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "SNAT", "MASQUERADE", "MARK", "LOG"}
Tables = dict[str, dict[str, list[list[str]]]]


class FakeIptables:
    """The packet filter in memory. `fail_next` makes the next restore fail (then clears)."""

    name = "fake"

    def __init__(self, *, unsupported_protocols: Sequence[str] = ()) -> None:
        self.unsupported = set(unsupported_protocols)  # "-p X" the kernel rejects
        self.tables: Tables = {t: {c: [] for c in cs} for t, cs in BUILTIN_CHAINS.items()}
        self.restores: list[str] = []  # every restore text applied successfully
        self.fail_next: str | None = None

    def __repr__(self) -> str:
        sizes = {t: sum(len(r) for r in cs.values()) for t, cs in self.tables.items()}
        return f"<FakeIptables rules={sizes}>"

    def restore(self, text: str) -> None:
        if self.fail_next:
            message, self.fail_next = self.fail_next, None
            raise RestoreError(message, None)
        tables = copy.deepcopy(self.tables)
        for ops in parse_restore(text):
            chains = tables.setdefault(ops.name, {})
            for chain in ops.declared:
                if chain in BUILTIN_CHAINS.get(ops.name, ()):
                    raise RestoreError(f"built-in chain {chain} declared under --noflush")
                chains[chain] = []
            for chain, args, line in ops.appends:
                self._check_protocol(args)
                if chain not in chains:
                    raise RestoreError(f"line {line}: no chain {chain}", line)
                target = _target(args)
                if target and target not in TARGETS and target not in chains:
                    raise RestoreError(f"line {line}: Chain '{target}' does not exist", line)
                chains[chain].append(args)
            for chain in ops.deletes:
                _delete(chains, chain)
        self.tables = tables
        self.restores.append(text)

    def chains(self, table: str) -> set[str]:
        return set(self.tables.get(table, {}))

    def chain_exists(self, table: str, chain: str) -> bool:
        return chain in self.tables.get(table, {})

    def ensure_chain(self, table: str, chain: str) -> None:
        self.tables.setdefault(table, {}).setdefault(chain, [])

    def delete_chain(self, table: str, chain: str) -> None:
        chains = self.tables.get(table, {})
        if chain in chains:
            chains[chain] = []
            _delete(chains, chain)

    def _check_protocol(self, args: Sequence[str]) -> None:
        if "-p" in args and args[list(args).index("-p") + 1] in self.unsupported:
            raise RestoreError(f"protocol {args[list(args).index('-p') + 1]} not supported")

    def ensure_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        self._check_protocol(args)
        rules = self.tables[table][chain]
        target = _target(list(args))
        if target and target not in TARGETS and target not in self.tables[table]:
            raise RestoreError(f"no chain {target}")
        if list(args) in rules:
            return False
        rules.append(list(args))
        return True

    def delete_rule(self, table: str, chain: str, args: Sequence[str]) -> bool:
        rules = self.tables.get(table, {}).get(chain, [])
        if list(args) in rules:
            rules.remove(list(args))
            return True
        return False

    def missing_rules(self, table: str, rules: Sequence[tuple[str, Sequence[str]]]
                      ) -> list[tuple[str, list[str]]]:
        chains = self.tables.get(table, {})
        return [(c, list(args)) for c, args in rules if list(args) not in chains.get(c, [])]

    def flush_everything(self) -> None:
        """What a firewall reload does: every rule and every user chain gone."""
        self.tables = {t: {c: [] for c in cs} for t, cs in BUILTIN_CHAINS.items()}


def _target(args: list[str]) -> str | None:
    return args[args.index("-j") + 1] if "-j" in args else None


def _delete(chains: dict[str, list[list[str]]], chain: str) -> None:
    if chain not in chains:
        raise RestoreError(f"-X {chain}: no such chain")
    if any(_target(r) == chain for c, rules in chains.items() if c != chain for r in rules):
        raise RestoreError(f"-X {chain}: chain is still referenced")
    del chains[chain]


# -- the packet tracer ------------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    mark: int = 0
    ctstate: frozenset[str] = frozenset({"NEW"})
    masquerade: bool = False


@dataclass(frozen=True)
class Outcome:
    """One way a packet can go: its verdict, its destination after DNAT, SNAT or not."""

    verdict: str  # ACCEPT, DROP or REJECT
    destination: str  # "ip:port"
    masquerade: bool = False


@dataclass
class _Tracer:
    tables: Tables
    local_ips: frozenset[str]
    outcomes: list[Outcome] = field(default_factory=list)

    def local(self, ip: str) -> bool:
        return ip in self.local_ips or ip.startswith("127.")

    def chain(self, table: str, chain: str, pkt: Packet, depth: int = 0
              ) -> list[tuple[str, Packet]]:
        """Run `chain`; return (verdict, packet) per branch, verdict RETURN for fall-through."""
        if depth > 32:
            raise RuntimeError(f"jump loop at {table}/{chain}")
        done: list[tuple[str, Packet]] = []
        states = [pkt]
        for args in self.tables[table].get(chain, []):
            following: list[Packet] = []
            for p in states:
                matched = self.match(args, p)
                if matched == "no":
                    following.append(p)
                    continue
                for verdict, q in self.target(table, args, p, depth):
                    if verdict:
                        done.append((verdict, q))
                    else:
                        following.append(q)
                if matched == "maybe":
                    following.append(p)
            states = following
        return done + [("RETURN", p) for p in states]

    def match(self, args: list[str], p: Packet) -> str:
        result, negate, i = "yes", False, 0
        while i < len(args) and args[i] != "-j":
            word, value = args[i], args[i + 1] if i + 1 < len(args) else ""
            i += 1
            ok: bool | None = None
            if word == "!":
                negate = True
                continue
            if word in ("-s", "-d"):
                ok = ipaddress.ip_address(p.src if word == "-s" else p.dst) in \
                    ipaddress.ip_network(value, strict=False)
            elif word == "-p":
                ok = p.proto == value
            elif word == "--dport":
                ok = p.dport == int(value)
            elif word in ("--dst-type", "--src-type"):
                ok = self.local(p.dst if word == "--dst-type" else p.src) == (value == "LOCAL")
            elif word == "--mark":
                want, _, mask = value.partition("/")
                ok = p.mark & int(mask or "0xffffffff", 16) == int(want, 16)
            elif word == "--ctstate":
                ok = bool(p.ctstate & set(value.split(",")))
            elif word == "--rcheck":
                ok = False  # nothing recent: no client has been seen before
            elif word == "--probability":
                result = "maybe"
            if word in ("-m", "--comment", "--name", "--mode", "--probability", "--seconds",
                        "-s", "-d", "-p", "--dport", "--dst-type", "--src-type", "--mark",
                        "--ctstate"):
                i += 1  # skip the value
            if ok is not None and ok == negate:
                return "no"
            negate = False
        return result

    def target(self, table: str, args: list[str], p: Packet, depth: int
               ) -> list[tuple[str, Packet]]:
        """("", p) continues with the next rule; any other verdict ends the chain."""
        target = _target(args)
        if target is None:
            return [("", p)]
        options = args[args.index("-j") + 2:]
        if target in ("ACCEPT", "DROP", "REJECT", "RETURN"):
            return [(target, p)]
        if target == "DNAT":
            ip, _, port = options[options.index("--to-destination") + 1].rpartition(":")
            return [("ACCEPT", replace(p, dst=ip, dport=int(port),
                                       ctstate=p.ctstate | {"DNAT"}))]
        if target == "MARK":
            value = int(options[1], 16)
            mark = p.mark | value if options[0] == "--or-mark" else p.mark ^ value
            return [("", replace(p, mark=mark))]
        if target == "MASQUERADE":
            return [("ACCEPT", replace(p, masquerade=True))]
        return [("" if v == "RETURN" else v, q)
                for v, q in self.chain(table, target, p, depth + 1)]


def trace(ipt: FakeIptables, *, src: str, dst: str, dport: int, proto: str = "tcp",
          local_ips: Sequence[str] = (), from_node: bool = False) -> list[Outcome]:
    """Every way a new connection src -> dst:dport can go through the rules in `ipt`."""
    t = _Tracer(ipt.tables, frozenset(local_ips))
    first = Packet(src, dst, dport, proto)
    outcomes: list[Outcome] = []
    for verdict, p in t.chain("nat", "OUTPUT" if from_node else "PREROUTING", first):
        if verdict in ("DROP", "REJECT"):
            outcomes.append(Outcome(verdict, f"{p.dst}:{p.dport}"))
            continue
        hook = "OUTPUT" if from_node else ("INPUT" if t.local(p.dst) else "FORWARD")
        for fverdict, fp in t.chain("filter", hook, p):
            if fverdict in ("DROP", "REJECT"):
                outcomes.append(Outcome(fverdict, f"{fp.dst}:{fp.dport}"))
                continue
            for _, q in t.chain("nat", "POSTROUTING", fp):
                outcomes.append(Outcome("ACCEPT", f"{q.dst}:{q.dport}", q.masquerade))
    return sorted(set(outcomes), key=lambda o: (o.verdict, o.destination, o.masquerade))
