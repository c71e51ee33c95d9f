from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import cni


def test_conflist_is_bridge_then_portmap_for_the_pod_cidr() -> None:
    text = cni.render_conflist(network="pinnace-n1", bridge="cni0", pod_cidr="10.244.1.0/24",
                               ipam_dir=Path("/var/lib/pinnace/ipam"))
    conf = json.loads(text)
    assert conf["name"] == "pinnace-n1"
    bridge, portmap = conf["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"], bridge["ipMasq"]) == (
        "bridge", "cni0", True, False)
    assert bridge["hairpinMode"] is True
    assert bridge["ipam"] == {
        "type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/var/lib/pinnace/ipam"}
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_bridge_name_longer_than_the_kernel_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="15 characters"):
        cni.render_conflist(network="n", bridge="a-very-long-bridge", pod_cidr="10.0.0.0/24",
                            ipam_dir=Path("/x"))
