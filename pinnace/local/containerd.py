"""A private containerd (own root, state, socket, CNI config), optionally in a network namespace.

Several can run side by side, one per node. `stop()` removes every pod sandbox through the CRI
(so runc and the shims end their containers), stops containerd by PID, ends any shim still naming
our socket, unmounts what is left under the directory, and deletes the CNI bridge it used.
Registry mirrors (`mirrors={"docker.io": ["http://127.0.0.1:5000"]}`, or `set_mirrors` once the
mirror's port is known) are hosts.toml files under `<base>/certs.d`, its `config_path`, which
containerd reads on every pull (see agent/images/mirrors.py for where mirrors live and why).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from agent import cni
from agent.images import importer
from agent.images import mirrors as hosts_toml
from cri.v1 import api_pb2 as api
from pinnace.local import cleanup
from pinnace.local.process import Process

log = logging.getLogger(__name__)
DEFAULT_POD_CIDR = "10.88.0.0/24"
PAUSE_IMAGE = "localhost/pause:1"


def render_config(base: Path, *, sandbox_image: str = PAUSE_IMAGE) -> str:
    """Return containerd's config.toml for a containerd living entirely under `base`."""
    d = base / "containerd"
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{base}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{base}/certs.d"
"""


class Containerd:
    """One containerd under `base`, in network namespace `netns` (None: this namespace)."""

    def __init__(self, base: Path, *, name: str = "containerd", netns: str | None = None,
                 pod_cidr: str = DEFAULT_POD_CIDR, bridge: str = "pn0",
                 mirrors: Mapping[str, Sequence[str]] | None = None) -> None:
        self.base = base
        self.mirrors = dict(mirrors or {})
        self.name = name
        self.netns = netns
        self.pod_cidr = pod_cidr
        self.bridge = bridge
        self.config = base / "containerd" / "config.toml"
        self.process = Process(name, ["containerd", "--config", str(self.config)],
                               base / "logs" / f"{name}.log", netns=netns)
        self._ip_forward: str | None = None  # the sysctl's value before the bridge plugin ran

    def __repr__(self) -> str:
        return f"<Containerd {self.name} {self.socket} netns={self.netns} {self.process!r}>"

    @property
    def socket(self) -> str:
        return str(self.base / "containerd" / "containerd.sock")

    @property
    def certs_d(self) -> Path:
        """containerd's registry `config_path`: one `<registry>/hosts.toml` per configured one."""
        return self.base / "certs.d"

    def set_mirrors(self, registry: str, urls: Sequence[str]) -> None:
        """Pull `registry` through `urls` from now on (no urls: directly again)."""
        if urls:
            self.mirrors[registry] = list(urls)
            hosts_toml.write_hosts(self.certs_d, {registry: urls})
        else:
            self.mirrors.pop(registry, None)
            hosts_toml.remove_hosts(self.certs_d, [registry])

    def start(self, timeout: float = 20.0) -> None:
        for sub in ("containerd/root", "containerd/state", "containerd/opt", "cni/net.d",
                    "cni/ipam", "certs.d"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        hosts_toml.write_hosts(self.certs_d, self.mirrors)
        self.config.write_text(render_config(self.base))
        (self.base / "cni" / "net.d" / cni.CONFLIST_NAME).write_text(cni.render_conflist(
            network=f"pinnace-{self.name}", bridge=self.bridge, pod_cidr=self.pod_cidr,
            ipam_dir=self.base / "cni" / "ipam"))
        if self.netns is None:
            self._ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        self.process.start()
        self.process.wait_ready(self._answers, timeout)

    def _answers(self) -> bool:
        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            version = channel.unary_unary(
                "/runtime.v1.RuntimeService/Version",
                request_serializer=api.VersionRequest.SerializeToString,
                response_deserializer=api.VersionResponse.FromString,
            )
            version(api.VersionRequest(version="v1"), timeout=1)
        return True

    def import_images(self, *tars: Path) -> None:
        """Import image tars into the k8s.io namespace (e.g. the pause and busybox images)."""
        for tar in tars:
            asyncio.run(importer.import_archive(tar, self.socket))

    def stop(self) -> None:
        """Remove our pods, stop containerd and its shims, unmount, delete our bridge."""
        if self.process.alive():
            try:
                self._remove_all_sandboxes()
            except grpc.RpcError as exc:
                log.warning("%s: could not remove sandboxes through the CRI: %s", self.name, exc)
        self.process.stop()
        cleanup.kill_pids(cleanup.pids_referencing(str(self.base / "containerd")))
        cleanup.unmount_all(self.base)
        self._delete_bridge()
        if self._ip_forward is not None:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(self._ip_forward)

    def _remove_all_sandboxes(self) -> None:
        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            def call(method: str, request: object, response: Any) -> object:
                rpc = channel.unary_unary(f"/runtime.v1.RuntimeService/{method}",
                                          request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=response.FromString)
                return rpc(request, timeout=30)

            listed = call("ListPodSandbox", api.ListPodSandboxRequest(),
                          api.ListPodSandboxResponse)
            assert isinstance(listed, api.ListPodSandboxResponse)
            for sandbox in listed.items:
                call("StopPodSandbox", api.StopPodSandboxRequest(pod_sandbox_id=sandbox.id),
                     api.StopPodSandboxResponse)
                call("RemovePodSandbox", api.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id),
                     api.RemovePodSandboxResponse)

    def _delete_bridge(self) -> None:
        from pyroute2 import IPRoute, NetNS

        try:
            with (NetNS(self.netns) if self.netns else IPRoute()) as ipr:
                for index in ipr.link_lookup(ifname=self.bridge):
                    ipr.link("del", index=index)
        except Exception as exc:  # noqa: BLE001 - the namespace may be gone already
            log.debug("%s: bridge %s not deleted: %s", self.name, self.bridge, exc)
