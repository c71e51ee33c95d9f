"""The IPVS proxier: the iptables proxier's recording and runner, with an IPVS sync.

It subclasses `netproxy.proxier.Proxier`, so the change trackers, the bounded-frequency runner,
the canary, conntrack cleanup and the sync bookkeeping are the same code; only `_apply` (the
worker-thread half of a sync) differs. Each sync renders the whole desired IPVS state (pure),
dumps the kernel's table, and applies the minimal diff: service addresses are bound to the link
before their virtual servers are made and unbound after those are gone; then the iptables helpers
go in one restore. One failed IPVS operation does not stop the others; the sync then fails as a
whole and is retried as a full sync. The ownership record is widened before any change and
narrowed to exactly what we own after, so a crash in between never forgets a server of ours.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netproxy.conntrack import Conntrack
from netproxy.iptables import IptablesBackend
from netproxy.ipvs import rules as ipvs_rules
from netproxy.ipvs.detect import unavailable_reason
from netproxy.ipvs.kernel import IPVSClient, PyrouteIPVS
from netproxy.ipvs.link import IPRouteLink, ServiceLink
from netproxy.ipvs.record import DEFAULT_PATH, OwnershipRecord
from netproxy.ipvs.state import IPVSOptions, IPVSState, Op, desired, diff
from netproxy.proxier import Proxier, ProxierConfig, _Plan
from netproxy.routes import Netlink
from netproxy.rules import Ruleset

log = logging.getLogger(__name__)
SYSCTLS = {  # kube-proxy's IPVS settings (linux ipvs-sysctl)
    "net/ipv4/vs/conntrack": "1",  # keep conntrack for IPVS traffic: MASQUERADE needs it
    "net/ipv4/vs/expire_nodest_conn": "1",  # drop connections to a removed real server
    "net/ipv4/vs/expire_quiescent_template": "1",  # and their persistence templates
}


@dataclass(frozen=True)
class IPVSConfig:
    """The IPVS-mode flags; constant for the daemon's life."""

    scheduler: str = "rr"
    link_kind: str = "dummy"
    record: Path = field(default=DEFAULT_PATH)


def set_ipvs_sysctls(root: Path = Path("/proc/sys")) -> None:
    """The IPVS sysctls kube-proxy sets; failures are logged (the sync still works mostly)."""
    for name, value in SYSCTLS.items():
        path = root / name
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
                log.info("sysctl %s=%s", name.replace("/", "."), value)
        except OSError as exc:
            log.warning("sysctl %s=%s: %s", name.replace("/", "."), value, exc)


class IPVSProxier(Proxier):
    """Services and endpoints -> IPVS (+ iptables helpers)."""

    def __init__(self, config: ProxierConfig, backend: IptablesBackend, conntrack: Conntrack,
                 netlink: Netlink, *, ipvs: IPVSClient, link: ServiceLink,
                 record: OwnershipRecord, scheduler: str = "rr",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, backend, conntrack, netlink, clock=clock)
        # Effectively constant.
        self.ipvs = ipvs
        self.link = link
        self.record = record
        self.scheduler = scheduler
        # Owned by the sync thread (under self._kernel).
        self.state = IPVSState({}, {})  # the state the last successful sync put in place
        self.last_ops: list[Op] = []

    def __repr__(self) -> str:
        return (f"<IPVSProxier node={self.config.node_name} scheduler={self.scheduler} "
                f"virtualServers={len(self.state.servers)} syncs={self.stats.syncs} "
                f"failures={self.stats.failures}>")

    def ipvs_options(self, bound: set[str]) -> IPVSOptions:
        """NodePorts go on --nodeport-addresses, or on every local address but loopback and
        the service link's (as kube-proxy's IPVS mode)."""
        chosen = self._nodeport_ips()
        if chosen is None:
            chosen = tuple(a for a in self.netlink.addresses()
                           if a not in bound and not ipaddress.ip_address(a).is_loopback)
        return IPVSOptions(self.config.node_name, self.scheduler,
                           tuple(sorted(set(chosen) - bound)))

    def _apply(self, plan: _Plan) -> Ruleset:
        with self._kernel:
            started = time.perf_counter()
            self.link.ensure()
            bound = self.link.addresses()
            wanted = desired(self.services, self.endpoints, self.ipvs_options(bound))
            current = self.ipvs.dump()
            owned = self.record.load() | {k for k in current.servers if k.address in bound}
            ops = diff(current, wanted, owned)
            self.record.save(owned | set(wanted.servers))
            errors = self._change(sorted(wanted.addresses - bound), ops)
            left = {op.server.key for op in ops if op.action == "delete-server"} & \
                {k for k, _ in errors}
            self.record.save(set(wanted.servers) | left)
            for address in sorted(bound - wanted.addresses):
                self.link.unbind(address)
            rendered = time.perf_counter()
            ruleset = self._restore(plan, wanted)
            applied = time.perf_counter()
            if errors:
                raise OSError(f"{len(errors)} IPVS operations failed, first: {errors[0][1]}")
            self.state, self.last_ops = wanted, ops
        for filters in plan.conntrack:
            self.conntrack.delete(filters)
        s = self.stats
        s.syncs, s.full, s.rules = s.syncs + 1, plan.full, ruleset.rules
        s.render_seconds, s.apply_seconds = rendered - started, applied - rendered
        log.log(logging.INFO if plan.full or ops else logging.DEBUG,
                "synced %d virtual servers (%d IPVS changes, %d rules): ipvs %.1f ms, "
                "iptables %.1f ms", len(wanted.servers), len(ops), ruleset.rules,
                s.render_seconds * 1e3, s.apply_seconds * 1e3)
        return ruleset

    def _change(self, bind: list[str], ops: list[Op]) -> list[tuple[object, str]]:
        """Bind addresses, then apply `ops`; return (key, error) for each one that failed."""
        errors: list[tuple[object, str]] = []
        for address in bind:
            try:
                self.link.bind(address)
            except OSError as exc:
                errors.append((address, f"bind {address}: {exc}"))
        for op in ops:
            try:
                self.ipvs.apply(op)
                log.debug("ipvs %s", op)
            except OSError as exc:
                log.warning("ipvs %s (service %s): %s", op, op.server.service or "?", exc)
                errors.append((op.server.key, f"{op}: {exc}"))
        return errors

    def _restore(self, plan: _Plan, wanted: IPVSState) -> Ruleset:
        existing = set(self.backend.chains("nat")) if plan.relist else set()
        ruleset = ipvs_rules.render(self.services, self.endpoints, wanted,
                                    self.render_options(), existing_nat_chains=existing)
        self._restore_ruleset(ruleset, plan)
        return ruleset

    def _ensure_jumps(self) -> None:
        super()._ensure_jumps()
        wanted = [(j.chain, j.args()) for j in ipvs_rules.IPVS_JUMPS]
        for chain, args in self.backend.missing_rules("filter", wanted):
            if self.backend.ensure_rule("filter", chain, args):
                log.info("added jump filter/%s -> %s", chain, args[-1])


class IPVSUnavailable(OSError):
    """This kernel cannot do IPVS; the message is the one plain sentence to print."""

    def __str__(self) -> str:
        return str(self.args[0])


def start(config: ProxierConfig, ipvs_config: IPVSConfig, backend: IptablesBackend,
          conntrack: Conntrack, netlink: Netlink) -> IPVSProxier:
    """Check the kernel, set the IPVS sysctls and create the service link (blocking).

    Raise IPVSUnavailable or LinkKindUnsupported (both OSError, with a one-line message)."""
    reason = unavailable_reason()
    if reason is not None:
        raise IPVSUnavailable(reason)
    set_ipvs_sysctls()
    link = IPRouteLink(ipvs_config.link_kind)
    link.ensure()
    log.info("ipvs: scheduler %s, service addresses on %s (%s), record %s",
             ipvs_config.scheduler, link.name, link.kind, ipvs_config.record)
    return IPVSProxier(config, backend, conntrack, netlink, ipvs=PyrouteIPVS(), link=link,
                       record=OwnershipRecord(ipvs_config.record),
                       scheduler=ipvs_config.scheduler)
