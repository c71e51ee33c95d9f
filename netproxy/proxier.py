"""The iptables proxier: record changes, render the whole ruleset, apply it in one restore.

Informer handlers call `on_service` / `on_endpointslice` / `on_node`, which only record changes
in the trackers and poke the bounded-frequency runner. The runner calls `sync()`: it merges the
pending changes into the maps (on the event loop), then renders and applies off the loop in one
`iptables-restore --noflush`. A full sync (the first, after any failure, after an external flush
and every `sync_period`) rewrites every chain and re-adds missing jumps from the built-in chains
(-C || -A); the others rewrite only the Services that changed. Leftover chains of ours are found
by listing the kernel's chains on the first sync and after a failure or an external flush (which
also recreates the canaries); in between, the chains the last sync wrote are known. A failed
sync logs the offending lines and retries with a full sync.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netproxy import chains as ch
from netproxy.conntrack import Conntrack, stale_flow_filters
from netproxy.iptables import IptablesBackend, IptablesError, RestoreError, context
from netproxy.routes import Netlink, internal_ip
from netproxy.rules import RenderOptions, Ruleset, is_large_cluster, render
from netproxy.runner import BoundedFrequencyRunner
from netproxy.tracker import (
    EndpointsChangeTracker,
    EndpointsMap,
    PortMap,
    ServiceChangeTracker,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]


@dataclass(frozen=True)
class ProxierConfig:
    """The proxier's settings; constant for the daemon's life."""

    node_name: str
    node_ip: str = ""  # the primary IP until the Node object's InternalIP is known
    cluster_cidr: str = ""
    masquerade_all: bool = False
    masquerade_bit: int = 14
    nodeport_addresses: tuple[str, ...] = ()  # CIDRs and/or "primary"; (): every local address
    localhost_nodeports: bool = False
    sync_period: float = 30.0  # full resync at least this often
    min_sync_period: float = 1.0  # at most one sync per this many seconds
    retry_period: float = 2.0  # after a failed sync
    canary_period: float = 5.0  # how often the canary chains are checked


@dataclass
class SyncStats:
    syncs: int = 0
    failures: int = 0
    full: bool = False
    rules: int = 0
    render_seconds: float = 0.0
    apply_seconds: float = 0.0
    last_error: str = ""


@dataclass
class _Plan:
    full: bool
    relist: bool = False  # list the kernel's chains: ours may be there from before
    skip: set[str] = field(default_factory=set)
    conntrack: list[list[str]] = field(default_factory=list)


class Proxier:
    """Services and endpoints -> iptables. Handlers and `sync` run on one event loop."""

    def __init__(self, config: ProxierConfig, backend: IptablesBackend, conntrack: Conntrack,
                 netlink: Netlink, *, clock: Callable[[], float] = time.monotonic) -> None:
        # Effectively constant.
        self.config = config
        self.backend = backend
        self.conntrack = conntrack
        self.netlink = netlink
        self.clock = clock
        self.runner = BoundedFrequencyRunner("sync-runner", self.sync,
                                             min_interval=config.min_sync_period,
                                             max_interval=config.sync_period, clock=clock)
        # The change trackers: written by informer handlers on the event loop.
        self.service_changes = ServiceChangeTracker()
        self.endpoint_changes = EndpointsChangeTracker()
        self.services_synced = False
        self.applied = asyncio.Event()  # set once a sync has reached the kernel
        self.endpoints_synced = False
        self.node_ip = config.node_ip
        # Owned by sync() (the runner runs one at a time); read by its worker thread.
        self.services: PortMap = {}
        self.endpoints: EndpointsMap = {}
        self.need_full_sync = True
        self.stats = SyncStats()
        self._last_full = float("-inf")
        self._large = False
        self._nat_chains: frozenset[str] = frozenset()  # ours in use after the last restore
        self._pending_conntrack: list[list[str]] = []
        self._canary = False  # created by a successful full sync
        self._listed = False  # the kernel's chains were listed since the last surprise
        # Serialises kernel access (sync thread vs canary check): python-iptables needs it.
        self._kernel = threading.Lock()
        # Read by netproxy.healthcheck/metrics (clock times): the last successful sync, the
        # oldest change (or failed sync) no successful sync has covered yet, and observers
        # called after every sync attempt with (seconds, full, succeeded).
        self.last_synced: float | None = None
        self.oldest_pending: float | None = None
        self.sync_observers: list[Callable[[float, bool, bool], None]] = []

    def __repr__(self) -> str:
        return (f"<Proxier node={self.config.node_name} backend={self.backend.name} "
                f"services={len(self.services)} syncs={self.stats.syncs} "
                f"failures={self.stats.failures}>")

    # -- recording (event loop) ------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self.services_synced and self.endpoints_synced

    def on_service(self, previous: Object | None, current: Object | None) -> None:
        if self.service_changes.update(previous, current) and self.initialized:
            self.request_sync()

    def on_endpointslice(self, previous: Object | None, current: Object | None) -> None:
        if self.endpoint_changes.update(previous, current) and self.initialized:
            self.request_sync()

    def on_node(self, node: Object) -> None:
        """Our own Node changed: its InternalIP feeds "primary" NodePorts and LB ranges."""
        if (node.get("metadata") or {}).get("name") != self.config.node_name:
            return
        ip = internal_ip(node) or self.config.node_ip
        if ip != self.node_ip:
            log.info("node %s: InternalIP %s", self.config.node_name, ip or "(none)")
            self.node_ip = ip
            self.need_full_sync = True  # firewall chains of every service may depend on it
            if self.initialized:
                self.request_sync()

    def set_synced(self) -> None:
        """Both informers have listed: syncs may start."""
        self.services_synced = self.endpoints_synced = True
        self.request_sync()

    def request_sync(self) -> None:
        """Ask the runner for a sync, noting since when one is owed (for /healthz)."""
        if self.oldest_pending is None:
            self.oldest_pending = self.clock()
        self.runner.run()

    # -- syncing ---------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Merge pending changes and bring the kernel's rules to match (one restore)."""
        if not self.initialized:
            log.debug("not syncing until Services and EndpointSlices have been listed")
            return
        svc = self.service_changes.checkout(self.services)
        eps = self.endpoint_changes.checkout(self.endpoints)
        self._pending_conntrack.extend(f for f in stale_flow_filters(
            self.services, deleted_udp_ips=svc.deleted_udp_ips,
            new_udp_services=eps.new_udp_services, stale_endpoints=eps.stale_endpoints)
            if f not in self._pending_conntrack)
        large = is_large_cluster(self.endpoints)
        full = (self.need_full_sync or large != self._large
                or self.clock() - self._last_full >= self.config.sync_period)
        changed = svc.changed | eps.changed
        skip = set() if full else {s.service for s in self.services} - changed
        plan = _Plan(full, full and not self._listed, skip, list(self._pending_conntrack))
        self._large = large
        self.need_full_sync = True  # until this sync has succeeded
        if full:
            self._last_full = self.clock()
        owed, self.oldest_pending = self.oldest_pending, None
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._apply, plan)
        except Exception as exc:  # noqa: BLE001 - log, retry, never die
            # The rules are owed since the oldest change this sync covered, or since now.
            self.oldest_pending = min(t for t in (owed, self.oldest_pending, self.clock())
                                      if t is not None)
            self._observe(started, plan.full, False)
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            self._listed = False
            log.error("sync failed: %s; retrying in %.1fs with a full sync", exc,
                      self.config.retry_period)
            self.runner.retry_after(self.config.retry_period)
            return
        self.need_full_sync = False
        del self._pending_conntrack[:len(plan.conntrack)]
        self.last_synced = self.clock()
        self._observe(started, plan.full, True)
        self.applied.set()

    def _observe(self, started: float, full: bool, ok: bool) -> None:
        for observer in self.sync_observers:
            try:
                observer(time.perf_counter() - started, full, ok)
            except Exception:  # noqa: BLE001 - an observer never breaks the sync
                log.exception("sync observer %r failed", observer)

    def render_options(self) -> RenderOptions:
        c = self.config
        return RenderOptions(node_name=c.node_name, cluster_cidr=c.cluster_cidr,
                             masquerade_all=c.masquerade_all, masquerade_bit=c.masquerade_bit,
                             nodeport_addresses=self._nodeport_ips(),
                             localhost_nodeports=c.localhost_nodeports, node_ip=self.node_ip)

    def _nodeport_ips(self) -> tuple[str, ...] | None:
        wanted = self.config.nodeport_addresses
        if not wanted:
            return None
        ips: list[str] = []
        if "primary" in wanted and self.node_ip:
            ips.append(self.node_ip)
        nets = [ipaddress.ip_network(w, strict=False) for w in wanted if w != "primary"]
        if nets:
            for address in self.netlink.addresses():
                ip = ipaddress.ip_address(address)
                if any(ip in n for n in nets) and address not in ips:
                    ips.append(address)
        if not ips:
            log.warning("no local address matches --nodeport-addresses %s: NodePorts are off",
                        ",".join(wanted))
        return tuple(ips)

    def _apply(self, plan: _Plan) -> Ruleset:
        """Render and apply (worker thread). Raises on failure, after logging the context."""
        with self._kernel:
            started = time.perf_counter()
            existing = set(self._nat_chains)
            if plan.relist:
                existing |= self.backend.chains("nat")
            ruleset = render(self.services, self.endpoints, self.render_options(),
                             existing_nat_chains=existing, skip_services=plan.skip)
            rendered = time.perf_counter()
            self._restore_ruleset(ruleset, plan)
            applied = time.perf_counter()
        for filters in plan.conntrack:
            self.conntrack.delete(filters)
        s = self.stats
        s.syncs, s.full, s.rules = s.syncs + 1, plan.full, ruleset.rules
        s.render_seconds, s.apply_seconds = rendered - started, applied - rendered
        log.log(logging.INFO if plan.full else logging.DEBUG,
                "synced %d services (%s, %d rules): render %.1f ms, apply %.1f ms",
                len({p.service for p in self.services}), "full" if plan.full else "partial",
                ruleset.rules, s.render_seconds * 1e3, s.apply_seconds * 1e3)
        return ruleset

    def _restore_ruleset(self, ruleset: Ruleset, plan: _Plan) -> None:
        """One atomic restore of `ruleset` (its offending lines logged on failure), then the
        jumps into our chains on a full sync and the canary chains once."""
        try:
            self.backend.restore(ruleset.text)
        except RestoreError as exc:
            log.error("%s restore failed: %s\n%s", self.backend.name, exc,
                      context(ruleset.text, exc.line))
            raise
        self._nat_chains = ruleset.nat_chains
        if plan.full:
            self._ensure_jumps()
        if not self._canary:
            for table in ch.CANARY_TABLES:
                self.backend.ensure_chain(table, ch.CANARY)
            self._canary = True
        self._listed |= plan.relist

    def _ensure_jumps(self) -> None:
        """-C || -A every jump into our chains that a listing of the built-in chains misses."""
        jumps = ch.JUMPS + (ch.LOCALNET_JUMPS if self.config.localhost_nodeports else ())
        for table in ("filter", "nat"):
            wanted = [(j.chain, j.args()) for j in jumps if j.table == table]
            for chain, args in self.backend.missing_rules(table, wanted):
                if self.backend.ensure_rule(table, chain, args):
                    log.info("added jump %s/%s -> %s", table, chain, args[-1])

    def probe_protocols(self) -> tuple[str, ...]:
        """TCP and UDP, plus SCTP if the kernel takes an SCTP rule (a scratch chain, removed).
        Services' SCTP ports are skipped with a warning where it does not (blocking call)."""
        protocols: tuple[str, ...] = ("TCP", "UDP")
        with self._kernel:
            try:
                self.backend.ensure_chain("filter", ch.SCTP_PROBE)
                self.backend.ensure_rule("filter", ch.SCTP_PROBE,
                                         ["-p", "sctp", "-m", "sctp", "--dport", "1", "-j",
                                          "RETURN"])
                protocols += ("SCTP",)
            except IptablesError as exc:
                log.warning("this kernel cannot filter SCTP (%s): SCTP ports are not proxied",
                            exc)
            finally:
                try:
                    self.backend.delete_chain("filter", ch.SCTP_PROBE)
                except IptablesError as exc:
                    log.warning("cannot remove %s: %s", ch.SCTP_PROBE, exc)
        self.service_changes.protocols = protocols
        return protocols

    # -- external flushes --------------------------------------------------------------------------

    def canary_present(self) -> bool:
        """True unless something deleted one of our canary chains (worker thread)."""
        with self._kernel:
            return all(self.backend.chain_exists(t, ch.CANARY) for t in ch.CANARY_TABLES)

    async def monitor_canary(self) -> None:
        """Every `canary_period`, check the canaries; if one is gone, force a full sync."""
        while True:
            await asyncio.sleep(self.config.canary_period)
            if not self._canary:
                continue
            try:
                present = await asyncio.to_thread(self.canary_present)
            except Exception as exc:  # noqa: BLE001
                log.warning("canary check failed: %s", exc)
                continue
            if not present:
                log.warning("iptables canary %s is gone: our rules were flushed; resyncing",
                            ch.CANARY)
                self._canary = False
                self._listed = False
                self.need_full_sync = True
                self.request_sync()
