"""NodeManager: registers this node, keeps its status and Lease current, and writes its CNI config.

`register()` creates the Node (labels, taints, pod CIDR override, full status) or adopts an
existing one (default and extra labels brought up to date, spec left as others set it, so taints
are never re-added; status re-posted). With `--cloud-provider=external` the Node is created with
the cloud's uninitialized taint and the provided-node-ip annotation, and addresses the cloud
wrote are kept (the cloud-controller-manager owns them, as with the kubelet).
`run()` then runs four tasks that never die on an error (log, retry, continue):
- the lease: `kube-node-lease/<node>` renewed every 10 s (sooner after a failure);
- the status: CRI Status/Version/ListImages/ImageFsInfo and the machine measured every 10 s, and
  /status patched when it changed or 5 minutes after the last report (nodeStatusReportFrequency);
- the runtime check: CRI Status alone every 2 s (the kubelet's updateRuntimeUp runs every 5 s);
  when the runtime goes away or comes back the status is recomputed at once, so Ready follows
  containerd within seconds;
- the watch on the Node itself: once spec.podCIDR is known the conflist is written to
  `cni_conf_dir` and the status recomputed at once, so Ready follows within a round trip.
Like the kubelet, a Node deleted under a running agent is not re-created: restart the agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from agent import cni
from agent.node import conditions, status
from agent.node.config import PROVIDED_NODE_IP, NodeConfig, registration_taints
from agent.node.lease import NodeLease
from agent.node.machine import HostMachine, Machine, Sample, SystemInfo
from controlplane.api import errors
from controlplane.client.rest import NODES, RESTClient
from cri.errors import CRIError, Unavailable
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)

Object = dict[str, Any]
STRATEGIC = "application/strategic-merge-patch+json"
CNI_PLUGINS = ("bridge", "host-local", "portmap")
CRI_TIMEOUT = 5.0  # per status-probe call: a hung containerd must not stall the status


class NodeRuntime(Protocol):
    """The CRI calls node status needs (cri.runtime.RuntimeClient, cri.fake.FakeRuntime)."""

    async def version(self, *, timeout: float | None = None) -> api.VersionResponse: ...

    async def status(self, *, verbose: bool = False,
                     timeout: float | None = None) -> api.StatusResponse: ...

    async def list_images(self, filter: api.ImageFilter | None = None, *,
                          timeout: float | None = None) -> Sequence[api.Image]: ...

    async def image_fs_info(self, *, timeout: float | None = None) -> api.ImageFsInfoResponse: ...


def _rv(obj: Mapping[str, Any]) -> int:
    value = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(value) if value.isdigit() else 0


class NodeManager:
    """One node's registration, status, lease and CNI config (see the module docstring)."""

    def __init__(self, client: RESTClient, runtime: NodeRuntime, config: NodeConfig, *,
                 machine: Machine | None = None) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.machine: Machine = machine or HostMachine()
        self.clock = config.clock
        # Owned by whichever task runs; asyncio has one at a time between awaits.
        self.node: Object | None = None  # the newest Node seen (writes, watch, reads)
        self.runtime_state = status.RuntimeState()
        self.pressure = conditions.PressureTracker(
            timedelta(seconds=config.pressure_transition_period))
        self.images: list[Object] = []  # status.images from the last ListImages
        self.imagefs_mount = ""  # containerd's image filesystem, from ImageFsInfo
        self.last_report: datetime | None = None  # the last status post
        self.cni_cidr = ""  # the pod CIDR whose conflist is on disk
        self.cni_error = ""  # why the conflist could not be written
        self.lease = NodeLease(client, node_name=config.node_name,
                               duration_seconds=config.lease_duration_seconds,
                               clock=config.clock, node_uid=self._node_uid)
        self._poke = asyncio.Event()  # set: compute the status now, not at the next period

    def __repr__(self) -> str:
        ready = next((c.get("status") for c in self._status().get("conditions") or []
                      if c.get("type") == "Ready"), "Unknown")
        return (f"<NodeManager {self.config.node_name} ready={ready} "
                f"podCIDR={self.pod_cidr or '-'}>")

    @property
    def pod_cidr(self) -> str:
        """The node's pod CIDR: its spec's, else the --pod-cidr override ("" while unknown)."""
        return status.pod_cidr_of(self.node or {}) or self.config.pod_cidr

    def allocatable(self) -> dict[str, str]:
        """The node's allocatable resources as last reported ({} before registration)."""
        return dict(self._status().get("allocatable") or {})

    @property
    def conflist_path(self) -> Path:
        return self.config.cni_conf_dir / cni.CONFLIST_NAME

    # -- registration ----------------------------------------------------------------------------

    async def register(self) -> Object:
        """Create or adopt the Node, write the CNI config if the pod CIDR is known, post the
        status. Retries API failures (with backoff up to 7 s, as the kubelet) until it succeeds."""
        c = self.config
        log.info("node manager: node=%s ip=%s hostname=%s podCIDR=%s cni=%s root=%s labels=%s",
                 c.node_name, c.node_ip, c.host, c.pod_cidr or "-", self.conflist_path,
                 c.root_dir, dict(c.labels))
        delay = 0.1
        while True:
            try:
                return await self._register_once()
            except errors.APIError as exc:
                log.warning("node %s: registration failed, retrying in %.1fs: %s",
                            c.node_name, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 7.0)

    async def _register_once(self) -> Object:
        await asyncio.to_thread(self.config.root_dir.mkdir, parents=True, exist_ok=True)
        await self.probe_runtime()
        info, sample, missing = await self._measure()
        node = self._initial_node(info, sample, missing)
        try:
            self._see(await self.client.create(NODES, node))
            log.info("node %s registered", self.config.node_name)
        except errors.AlreadyExists:
            existing = await self.client.get(NODES, self.config.node_name)
            self._see(await self._adopt(existing))
            log.info("node %s exists: adopted it", self.config.node_name)
        await self.ensure_cni()
        await self.sync_node_status()
        assert self.node is not None
        return self.node

    def _wanted_labels(self, info: SystemInfo) -> dict[str, str]:
        return {**status.default_labels(self.config.host, info.architecture),
                **self.config.labels}

    def _wanted_annotations(self) -> dict[str, str]:
        """With an external cloud provider and --node-ip, the address the cloud must keep."""
        c = self.config
        if c.external_cloud_provider and c.provided_node_ip:
            return {PROVIDED_NODE_IP: c.provided_node_ip}
        return {}

    def _initial_node(self, info: SystemInfo, sample: Sample, missing: list[str]) -> Object:
        c = self.config
        spec: Object = {}
        if c.pod_cidr:
            spec.update(podCIDR=c.pod_cidr, podCIDRs=[c.pod_cidr])
        taints = registration_taints(c)  # at registration only, as the kubelet: never re-added
        if taints:
            spec["taints"] = taints
        metadata: Object = {"name": c.node_name, "labels": self._wanted_labels(info)}
        if self._wanted_annotations():
            metadata["annotations"] = self._wanted_annotations()
        return {"apiVersion": "v1", "kind": "Node", "metadata": metadata, "spec": spec,
                "status": self.desired_status(info, sample, missing, previous=[])}

    async def _adopt(self, existing: Object) -> Object:
        info = await asyncio.to_thread(self.machine.system_info)
        labels = (existing.get("metadata") or {}).get("labels") or {}
        patch: Object = {}
        stale = {k: v for k, v in self._wanted_labels(info).items() if labels.get(k) != v}
        if stale:
            patch["metadata"] = {"labels": stale}
        annotations = (existing.get("metadata") or {}).get("annotations") or {}
        missing = {k: v for k, v in self._wanted_annotations().items()
                   if annotations.get(k) != v}
        if missing:
            patch.setdefault("metadata", {})["annotations"] = missing
        theirs, override = status.pod_cidr_of(existing), self.config.pod_cidr
        if override and not theirs:
            patch["spec"] = {"podCIDR": override, "podCIDRs": [override]}
        elif override and theirs != override:
            log.warning("node %s: spec.podCIDR is %s; ignoring --pod-cidr %s",
                        self.config.node_name, theirs, override)
        if not patch:
            return existing
        return await self.client.patch(NODES, self.config.node_name, patch)

    # -- status ----------------------------------------------------------------------------------

    async def probe_runtime(self) -> None:
        """Ask the CRI for its status (and, when it answers, version, images and image fs)."""
        if not await self.check_runtime():
            return
        try:
            version = await self.runtime.version(timeout=CRI_TIMEOUT)
            self.runtime_state.runtime_version = (
                f"{version.runtime_name}://{version.runtime_version}")
            self.images = status.node_images(await self.runtime.list_images(timeout=CRI_TIMEOUT))
            filesystems = (await self.runtime.image_fs_info(timeout=CRI_TIMEOUT)).image_filesystems
            self.imagefs_mount = filesystems[0].fs_id.mountpoint if filesystems else ""
        except (CRIError, OSError) as exc:
            log.warning("node %s: container runtime query failed: %s", self.config.node_name, exc)

    async def check_runtime(self) -> bool:
        """One CRI Status call into the runtime state; True when the runtime answered."""
        try:
            answer = await self.runtime.status(timeout=CRI_TIMEOUT)
        except (CRIError, OSError) as exc:
            if not self.runtime_state.unreachable:
                log.warning("node %s: container runtime status check failed: %s",
                            self.config.node_name, exc)
            if isinstance(exc, (Unavailable, OSError)):
                self.runtime_state.observe_unreachable(
                    exc.details if isinstance(exc, CRIError) else str(exc))
            return False
        if self.runtime_state.unreachable:
            log.info("node %s: container runtime is up again", self.config.node_name)
        self.runtime_state.observe(self.clock(), answer)
        return True

    async def _measure(self) -> tuple[SystemInfo, Sample, list[str]]:
        def measure() -> tuple[SystemInfo, Sample, list[str]]:
            bin_dir = self.config.cni_bin_dir
            missing = [p for p in CNI_PLUGINS
                       if bin_dir is not None and not (bin_dir / p).exists()]
            sample = self.machine.sample(self.config.root_dir, self.imagefs_mount)
            return self.machine.system_info(), sample, missing

        return await asyncio.to_thread(measure)

    def _status(self) -> Object:
        return dict((self.node or {}).get("status") or {})

    def ready_errors(self, sample: Sample, missing_plugins: list[str]) -> list[str]:
        """Why the node is not Ready, in the kubelet's order (runtime, network, capacity)."""
        now = self.clock()
        out = self.runtime_state.errors(now)
        if not self.pod_cidr:
            out.append("network not ready: no pod CIDR assigned to the node yet "
                       "(spec.podCIDR is empty), so no CNI config is written")
        elif self.cni_error:
            out.append(f"network not ready: {self.cni_error}")
        elif self.cni_cidr != self.pod_cidr:
            out.append(f"network not ready: CNI config for {self.pod_cidr} not written yet")
        if missing_plugins:
            out.append(f"network not ready: CNI plugins missing from {self.config.cni_bin_dir}: "
                       + ", ".join(missing_plugins))
        if sample.nodefs is None:
            out.append("missing node capacity for resources: ephemeral-storage")
        return out

    def desired_status(self, info: SystemInfo, sample: Sample, missing_plugins: list[str], *,
                       previous: Sequence[Object],
                       addresses: Sequence[Object] = ()) -> Object:
        """The status to report now; `previous` conditions give the transition times,
        `addresses` are the Node's current ones."""
        c = self.config
        now = self.clock()
        met = conditions.thresholds_met(sample, c.eviction_hard)
        if met:
            log.warning("node %s: eviction thresholds met: %s", c.node_name, ", ".join(met))
        reported = status.reported_addresses(
            c.node_ip, c.host, addresses, external_cloud=c.external_cloud_provider,
            node_ip_given=bool(c.provided_node_ip))
        return {
            **({"addresses": reported} if reported else {}),  # none yet: wait for the cloud's
            "capacity": status.capacity(sample, c.max_pods),
            "allocatable": status.allocatable(sample, c.max_pods, c.eviction_hard),
            "conditions": conditions.node_conditions(
                now=now, pressure=self.pressure.observe(now, met),
                ready_errors=self.ready_errors(sample, missing_plugins), previous=previous),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": c.kubelet_port}},
            "nodeInfo": status.node_info(info, self.runtime_state.runtime_version),
            "images": list(self.images),
        }

    async def sync_node_status(self) -> bool:
        """Compute the status; post it if it changed or a report is due. True if posted."""
        await self.probe_runtime()
        info, sample, missing = await self._measure()
        if self.node is None:
            self._see(await self.client.get(NODES, self.config.node_name))
        current = self._status()
        desired = self.desired_status(info, sample, missing,
                                      previous=current.get("conditions") or [],
                                      addresses=current.get("addresses") or [])
        now = self.clock()
        due = self.last_report is None or (
            now - self.last_report >= timedelta(seconds=self.config.status_report_frequency))
        if not due and not status.status_changed(current, desired):
            return False
        patched = await self.client.patch(NODES, self.config.node_name,
                                          status.status_patch(current, desired),
                                          subresource="status", patch_type=STRATEGIC)
        self._see(patched)
        self.last_report = now
        return True

    # -- pod network -----------------------------------------------------------------------------

    def _write_conflist(self, cidr: str) -> None:
        ipam_dir = self.config.root_dir / "cni" / "networks"
        text = cni.render_conflist(network=f"pinnace-{self.config.node_name}",
                                   bridge=self.config.cni_bridge, pod_cidr=cidr,
                                   ipam_dir=ipam_dir)
        path = self.conflist_path
        if path.exists() and path.read_text() == text:
            return
        ipam_dir.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")  # containerd ignores this name
        tmp.write_text(text)
        os.replace(tmp, path)
        log.info("node %s: wrote %s for pod CIDR %s", self.config.node_name, path, cidr)

    async def ensure_cni(self) -> bool:
        """Write the conflist for the pod CIDR if it is known and not on disk; True if the
        network config changed (written, or a failure appeared or cleared)."""
        cidr = self.pod_cidr
        if not cidr or (cidr == self.cni_cidr and not self.cni_error):
            return False
        try:
            await asyncio.to_thread(self._write_conflist, cidr)
        except (OSError, ValueError) as exc:
            error = f"failed to write CNI config {self.conflist_path}: {exc}"
            changed, self.cni_error = error != self.cni_error, error
            log.error("node %s: %s", self.config.node_name, error)
            return changed
        self.cni_cidr, self.cni_error = cidr, ""
        return True

    # -- the Node itself -------------------------------------------------------------------------

    def _node_uid(self) -> str:
        return str(((self.node or {}).get("metadata") or {}).get("uid") or "")

    def _see(self, node: Object) -> None:
        """Keep `node` if it is at least as new as the one we have."""
        if node.get("metadata") and (self.node is None or _rv(node) >= _rv(self.node)):
            self.node = node

    async def handle_node_event(self, event: Object) -> str:
        """Apply one watch event of our Node; return the resourceVersion to resume from."""
        kind, obj = event.get("type"), event.get("object") or {}
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "DELETED":
            log.error("node %s was deleted; restart the agent to register it again",
                      self.config.node_name)
            self.node = None
        elif kind in ("ADDED", "MODIFIED"):
            self._see(obj)
            if await self.ensure_cni():
                self._poke.set()
        return rv

    async def renew_lease(self) -> bool:
        """One lease renewal; False (logged) when it failed."""
        try:
            await self.lease.renew()
            return True
        except errors.APIError as exc:
            log.warning("node %s: lease renewal failed: %s", self.config.node_name, exc)
            return False

    # -- loops -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Register if not yet done, then keep lease, status and CNI config current forever."""
        if self.node is None:
            await self.register()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._lease_loop(), name=f"lease {self.config.node_name}")
            tasks.create_task(self._status_loop(), name=f"status {self.config.node_name}")
            tasks.create_task(self._watch_loop(), name=f"watch {self.config.node_name}")
            tasks.create_task(self._runtime_loop(), name=f"runtime {self.config.node_name}")

    async def _lease_loop(self) -> None:
        period = self.config.lease_renew_interval
        delay = self.config.retry_interval
        while True:
            if await self.renew_lease():
                wait, delay = period, self.config.retry_interval
            else:
                wait, delay = min(delay, period), min(delay * 2, period)
            await asyncio.sleep(wait)

    async def _runtime_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.runtime_check_interval)
            before = self.runtime_state.errors(self.clock())
            try:
                await self.check_runtime()
            except Exception as exc:  # noqa: BLE001 - never die: the next period retries
                log.warning("node %s: runtime check failed: %s", self.config.node_name, exc)
            if self.runtime_state.errors(self.clock()) != before:
                self._poke.set()

    async def _status_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._poke.wait(), self.config.status_update_frequency)
            except TimeoutError:
                pass
            self._poke.clear()
            try:
                await self.ensure_cni()
                await self.sync_node_status()
            except Exception as exc:  # noqa: BLE001 - never die: the next period retries
                log.warning("node %s: status update failed: %s", self.config.node_name, exc)

    async def _watch_loop(self) -> None:
        delay, rv = self.config.retry_interval, ""
        while True:
            try:
                if not rv:
                    node = await self.client.get(NODES, self.config.node_name)
                    self._see(node)
                    if await self.ensure_cni():
                        self._poke.set()
                    rv = str(node["metadata"].get("resourceVersion") or "")
                events = 0
                async for event in self.client.watch(
                        NODES, field_selector=f"metadata.name={self.config.node_name}",
                        resource_version=rv):
                    events += 1
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: read afresh
                        rv = ""
                        break
                    rv = await self.handle_node_event(event) or rv
                delay = self.config.retry_interval
                if events:
                    continue  # the server ended the watch (its timeout): watch on at once
            except Exception as exc:  # noqa: BLE001 - never die: back off and watch again
                log.warning("node %s: watch failed, retrying in %.1fs: %s",
                            self.config.node_name, delay, exc)
                rv = ""
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
