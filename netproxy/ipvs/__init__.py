"""IPVS proxy mode: Services as IPVS virtual servers, plus the iptables helpers they need.

Modules: `detect` (does this kernel have ip_vs?), `state` (the desired IPVS state and the diff
against the kernel's, both pure), `kernel` (pyroute2's IPVS behind a Protocol), `link` (the
kube-ipvs0 link holding the service addresses), `rules` (the iptables helpers, pure), `record`
(which virtual servers are ours), `proxier` (the sync) and `cleanup`; `fake` has the fakes.
"""

from netproxy.ipvs.detect import unavailable_reason

__all__ = ["unavailable_reason"]
