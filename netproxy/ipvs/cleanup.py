"""`--cleanup` for IPVS mode: our virtual servers, the service link, KUBE-IPVS-FILTER, the record.

Only ours: a virtual server is deleted when its address is bound to kube-ipvs0 or the ownership
record names it; every other IPVS entry stays. The shared chains (KUBE-SERVICES, ...) are the
iptables mode's and go with its cleanup (netproxy.cleanup); this removes what only IPVS mode
adds. Without ip_vs (`ipvs` None) only the link, the chain and the record can be left over.
"""

from __future__ import annotations

import logging

from netproxy.iptables import IptablesBackend, IptablesError
from netproxy.ipvs.kernel import IPVSClient
from netproxy.ipvs.link import ServiceLink
from netproxy.ipvs.record import OwnershipRecord
from netproxy.ipvs.rules import IPVS_JUMPS, KUBE_IPVS_FILTER
from netproxy.ipvs.state import Op

log = logging.getLogger(__name__)


def cleanup(backend: IptablesBackend, ipvs: IPVSClient | None, link: ServiceLink,
            record: OwnershipRecord) -> list[str]:
    """Remove all IPVS-mode state of ours; return the errors met (empty: all gone)."""
    errors: list[str] = []
    try:
        bound = link.addresses()
        if ipvs is not None:
            current = ipvs.dump()
            owned = record.load() | {k for k in current.servers if k.address in bound}
            for key in sorted(owned & set(current.servers)):
                try:
                    ipvs.apply(Op("delete-server", current.servers[key]))
                    log.info("deleted virtual server %s", key)
                except OSError as exc:
                    errors.append(f"virtual server {key}: {exc}")
        link.delete()
        if not errors:
            record.remove()
    except OSError as exc:
        errors.append(f"ipvs: {exc}")
    for jump in IPVS_JUMPS:
        try:
            for _ in range(16):  # every copy, in case something added one twice
                if not backend.delete_rule(jump.table, jump.chain, jump.args()):
                    break
            backend.delete_chain(jump.table, KUBE_IPVS_FILTER)
        except IptablesError as exc:
            errors.append(str(exc))
    return errors


def cleanup_here(backend: IptablesBackend, record: OwnershipRecord) -> list[str]:
    """`cleanup` against this host's kernel (IPVS only where the kernel has it)."""
    from netproxy.ipvs.detect import unavailable_reason
    from netproxy.ipvs.kernel import PyrouteIPVS
    from netproxy.ipvs.link import IPRouteLink

    ipvs = PyrouteIPVS() if unavailable_reason() is None else None
    return cleanup(backend, ipvs, IPRouteLink(), record)
