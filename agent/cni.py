"""The node's CNI network config: a bridge with host-local IPAM for the pod CIDR, then portmap.

Pure rendering; the caller writes the file where containerd's CRI looks (`cni.conf_dir`). Each
node gets its own network name, bridge and IPAM data directory, or two nodes on one machine would
hand out the same pod IPs (PLATFORM.md).
"""

from __future__ import annotations

import json
from pathlib import Path

CNI_VERSION = "0.4.0"
CONFLIST_NAME = "10-pinnace.conflist"


def render_conflist(*, network: str, bridge: str, pod_cidr: str, ipam_dir: Path,
                    ip_masq: bool = False) -> str:
    """Return the conflist JSON for a node whose pods live in `pod_cidr` behind `bridge`."""
    if len(bridge) > 15:
        raise ValueError(f"bridge name {bridge!r} is longer than the kernel's 15 characters")
    conflist = {
        "cniVersion": CNI_VERSION,
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": ip_masq,  # off when nodes route pod CIDRs to each other (host-gw)
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"
