"""`pinnace netproxy --cleanup`: remove every rule, chain and route this proxy installs.

Jumps from the built-in chains go first (deleted by their exact arguments, every copy), then
our chains in nat and filter are flushed and deleted in one restore per table (flushing them all
before deleting any, so references between them do not matter), then the canaries and the pod
routes tagged with our routing protocol. Chains and rules of anyone else stay as they were.
"""

from __future__ import annotations

import logging

from netproxy import chains as ch
from netproxy.iptables import IptablesBackend, IptablesError
from netproxy.routes import Netlink, RouteManager

log = logging.getLogger(__name__)


def cleanup_rules(backend: IptablesBackend) -> list[str]:
    """Remove all of our iptables state; return the errors met (empty: all gone)."""
    errors: list[str] = []
    for jump in ch.JUMPS + ch.LOCALNET_JUMPS:
        try:
            for _ in range(16):  # every copy, in case something added one twice
                if not backend.delete_rule(jump.table, jump.chain, jump.args()):
                    break
        except IptablesError as exc:
            errors.append(str(exc))
    for table in ("nat", "filter"):
        try:
            ours = sorted(c for c in backend.chains(table) if ch.is_ours(c) and c != ch.CANARY)
            if ours:
                backend.restore("\n".join([f"*{table}", *(f":{c} - [0:0]" for c in ours),
                                           *(f"-X {c}" for c in ours), "COMMIT", ""]))
                log.info("deleted %d chains from %s", len(ours), table)
        except IptablesError as exc:
            errors.append(f"{table}: {exc}")
    for table in ch.CANARY_TABLES:
        try:
            backend.delete_chain(table, ch.CANARY)
        except IptablesError as exc:
            errors.append(str(exc))
    return errors


def cleanup(backend: IptablesBackend, netlink: Netlink) -> list[str]:
    """Rules, chains, canaries and our pod routes; return the errors met."""
    errors = cleanup_rules(backend)
    try:
        RouteManager(netlink, "").cleanup()
    except OSError as exc:
        errors.append(f"routes: {exc}")
    return errors
