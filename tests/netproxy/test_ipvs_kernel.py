"""The pyroute2 side of IPVS without a kernel: messages encoded and decoded by pyroute2's own
codec, the requests we send, the detection sentence, and the fake's kernel-like errors."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import ipvs as genl

from netproxy.ipvs import detect
from netproxy.ipvs.fake import FakeIPVS
from netproxy.ipvs.kernel import dest_request, real_of, server_of, service_request
from netproxy.ipvs.state import Op, RealServer, VirtualServer, VirtualServerKey

WEB = VirtualServer(VirtualServerKey("UDP", "10.96.0.53", 53), "sh", 10800)


def round_trip(attrs: list[tuple[str, Any]]) -> Any:
    """A message as the kernel would send it: encoded, then decoded by pyroute2."""
    msg = genl.ipvsmsg()
    msg["cmd"], msg["version"], msg["attrs"] = genl.IPVS_CMD_NEW_SERVICE, 1, attrs
    msg.encode()
    decoded = genl.ipvsmsg(msg.data)
    decoded.decode()
    return decoded


def test_service_requests_round_trip_into_the_same_virtual_server() -> None:
    request = service_request(WEB)
    msg = round_trip([("IPVS_CMD_ATTR_SERVICE", request.dump_nla())])
    assert server_of(msg) == WEB
    plain = VirtualServer(VirtualServerKey("TCP", "10.96.0.10", 80), "rr")
    assert server_of(round_trip([("IPVS_CMD_ATTR_SERVICE",
                                  service_request(plain).dump_nla())])) == plain


def test_kernel_flags_and_timeouts_without_persistence_are_read_right() -> None:
    request = service_request(VirtualServer(VirtualServerKey("TCP", "10.96.0.10", 80), "rr"))
    request["flags"] = {"flags": 0x0002, "mask": 0xFFFF}  # hashed: the kernel's own bit
    request["timeout"] = 300
    parsed = server_of(round_trip([("IPVS_CMD_ATTR_SERVICE", request.dump_nla())]))
    assert parsed is not None and parsed.timeout == 0


def test_fwmark_services_are_not_ours_to_read() -> None:
    msg = round_trip([("IPVS_CMD_ATTR_SERVICE",
                       {"attrs": [("IPVS_SVC_ATTR_AF", 2), ("IPVS_SVC_ATTR_FWMARK", 7)]})])
    assert server_of(msg) is None


def test_real_servers_are_masqueraded_and_round_trip() -> None:
    request = dest_request(RealServer("10.0.1.2", 8080, 3))
    assert request["fwd_method"] == 0  # NAT, never pyroute2's default (direct routing)
    msg = round_trip([("IPVS_CMD_ATTR_DEST", request.dump_nla())])
    assert real_of(msg) == RealServer("10.0.1.2", 8080, 3)


def test_detection_sentences(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pyroute2

    def missing() -> None:
        raise NetlinkError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(pyroute2, "IPVS", missing)
    assert detect.unavailable_reason(tmp_path / "none") == (
        "--proxy-mode ipvs needs the ip_vs kernel module, which this kernel does not have "
        "(no IPVS generic netlink family); use --proxy-mode iptables")

    def forbidden() -> None:
        raise NetlinkError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(pyroute2, "IPVS", forbidden)
    assert detect.unavailable_reason(tmp_path / "none") == \
        "--proxy-mode ipvs cannot reach the kernel's IPVS (netlink: Operation not permitted)"
    (tmp_path / "ip_vs").write_text("")
    assert detect.unavailable_reason(tmp_path / "ip_vs") is None


def test_fake_ipvs_fails_like_the_kernel() -> None:
    fake = FakeIPVS()
    fake.apply(Op("add-server", WEB))
    with pytest.raises(OSError) as exists:
        fake.apply(Op("add-server", WEB))
    assert exists.value.errno == errno.EEXIST
    real = RealServer("10.0.2.2", 5353)
    with pytest.raises(OSError) as missing:
        fake.apply(Op("delete-real", WEB, real))
    assert missing.value.errno == errno.ENOENT
    fake.apply(Op("add-real", WEB, real))
    fake.apply(Op("delete-server", WEB))
    assert fake.dump().servers == {} and fake.applied == [
        "add-server UDP/10.96.0.53:53 sh persistent 10800s",
        "add-real UDP/10.96.0.53:53 -> 10.0.2.2:5353 weight 1",
        "delete-server UDP/10.96.0.53:53"]
