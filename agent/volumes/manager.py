"""The pod volume manager: each pod's volumes on disk, laid out as the kubelet lays them out.

`pods_dir/<uid>/volumes/kubernetes.io~<plugin>/<name>` for emptyDir (`empty-dir`), configMap
(`configmap`), secret, downwardAPI (`downward-api`) and projected; hostPath volumes are the
node's own path, checked and never written. `setup` is idempotent and cheap once a volume is
ready (the pod worker calls it on every sync); `refresh` rewrites the content volumes whose
sources changed through the AtomicWriter, so running containers see the new files; `teardown`
unmounts whatever is mounted below the pod's directory and only then removes it (rmtree does
not follow symlinks). medium Memory emptyDirs, and secret and projected volumes when
`secrets_in_memory` (default: when root, as Kubernetes keeps secrets off disk), are tmpfs.
Operations on one pod are serialised by a per-uid lock; blocking work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.volumes import hostpath, mounts, payloads
from agent.volumes.atomic_writer import AtomicWriter, FileProjection
from agent.volumes.container_mounts import container_mounts, volume_type
from agent.volumes.errors import SourceError, VolumeError
from agent.volumes.ownership import apply_fs_group, own
from agent.volumes.sizing import memory_size
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
Object = Mapping[str, Any]
Lookup = Callable[[str, str], Object | None]
PodInfo = Callable[[str], Object | None]  # pod uid -> the latest pod object
# (pod, audience or None, expirationSeconds) -> a bound service account token (TokenRequest).
TokenSource = Callable[[Object, str | None, int], Awaitable[str]]
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
CONTENT_TYPES = ("configMap", "secret", "downwardAPI", "projected")
TOKEN_MAX_AGE = 24 * 3600.0


class VolumeManager:
    """Sets up, refreshes and tears down the volumes of the pods on this node."""

    def __init__(self, pods_dir: Path, *, configmap: Lookup, secret: Lookup, node_name: str,
                 pod_info: PodInfo | None = None,
                 node_allocatable: Callable[[], Mapping[str, Any]] | None = None,
                 token: TokenSource | None = None, secrets_in_memory: bool | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.pods_dir = pods_dir
        self.node_name = node_name
        self._configmap = configmap
        self._secret = secret
        self._pod_info = pod_info  # the latest pod object, for downwardAPI files
        self._node_allocatable = node_allocatable or dict
        self._token = token
        self.secrets_in_memory = os.geteuid() == 0 if secrets_in_memory is None \
            else secrets_in_memory
        self._clock = clock
        # All below are guarded by the pod's lock in _locks (the dict itself: event loop only).
        self._locks: dict[str, asyncio.Lock] = {}
        self._ready: dict[str, set[str]] = {}  # uid -> names of the volumes set up
        # (uid, volume, source index) -> (token, fetched at, lifetime in seconds)
        self._tokens: dict[tuple[str, str, int], tuple[str, float, float]] = {}

    def __repr__(self) -> str:
        return f"<VolumeManager {self.pods_dir} pods={len(self._ready)}>"

    def pod_dir(self, uid: str) -> Path:
        if not uid or "/" in uid or uid in (".", ".."):
            raise ValueError(f"invalid pod uid {uid!r}")
        return self.pods_dir / uid

    def volume_path(self, pod: Object, volume: Object) -> Path:
        """Where the volume lives on the node (for hostPath: the host path itself)."""
        kind = volume_type(volume)
        if kind == "hostPath":
            return Path(str((volume.get("hostPath") or {}).get("path", "")))
        name = str(volume.get("name", ""))
        if not name or "/" in name or name in (".", ".."):
            raise VolumeError(name, "invalid volume name")
        uid = str(pod["metadata"]["uid"])
        return self.pod_dir(uid) / "volumes" / PLUGIN_DIRS.get(kind, kind) / name

    # -- lifecycle -------------------------------------------------------------------------------

    async def setup(self, pod: Object) -> dict[str, Path]:
        """Make every volume of the pod ready; return each volume's path on the node."""
        uid = pod["metadata"]["uid"]
        async with self._lock(uid):
            ready = self._ready.setdefault(uid, set())
            paths: dict[str, Path] = {}
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                name = volume.get("name", "")
                path = self.volume_path(pod, volume)
                if name not in ready:
                    try:
                        await self._setup_volume(pod, volume, path)
                    except SourceError as exc:
                        raise VolumeError(name, str(exc)) from exc
                    except OSError as exc:
                        raise VolumeError(name, f"{exc.strerror or exc}: {path}") from exc
                    ready.add(name)
                paths[name] = path
            return paths

    def container_mounts(self, pod: Object, container: Object,
                         volume_paths: Mapping[str, Path | str], *,
                         env: Sequence[tuple[str, str]] | None = None) -> list[api.Mount]:
        """The CRI mounts for the container's volumeMounts; raises envvars.ConfigError."""
        return container_mounts(pod, container, volume_paths, env=env)

    async def refresh(self, pod: Object) -> bool:
        """Rewrite the content volumes whose sources changed; return whether any did.

        A source that went missing keeps the volume's last content (a warning is logged),
        as the kubelet does.
        """
        uid = pod["metadata"]["uid"]
        changed = False
        async with self._lock(uid):
            ready = self._ready.get(uid, set())
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                name = volume.get("name", "")
                if name not in ready or volume_type(volume) not in CONTENT_TYPES:
                    continue
                try:
                    changed |= await self._write_content(pod, volume, self.volume_path(pod, volume))
                except (SourceError, OSError) as exc:
                    log.warning("volume refresh failed pod=%s volume=%s: %s", _key(pod), name, exc)
        return changed

    async def teardown(self, pod_uid: str) -> None:
        """Unmount and remove everything of the pod below pods_dir/<uid>."""
        root = self.pod_dir(pod_uid)
        async with self._lock(pod_uid):
            await asyncio.to_thread(_remove_pod_dir, root)
            self._ready.pop(pod_uid, None)
            for key in [k for k in self._tokens if k[0] == pod_uid]:
                del self._tokens[key]
        self._locks.pop(pod_uid, None)

    async def cleanup_orphans(self, active_uids: Collection[str]) -> list[str]:
        """Tear down the pod directories of pods no longer on this node; return their uids."""
        def listed() -> list[str]:
            try:
                entries = list(os.scandir(self.pods_dir))
                return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                return []
        orphans = [uid for uid in await asyncio.to_thread(listed) if uid not in active_uids]
        for uid in orphans:
            await self.teardown(uid)
        return orphans

    # -- one volume ------------------------------------------------------------------------------

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    async def _setup_volume(self, pod: Object, volume: Object, path: Path) -> None:
        kind = volume_type(volume)
        if kind == "hostPath":
            await asyncio.to_thread(hostpath.check_host_path, str(path),
                                    (volume.get("hostPath") or {}).get("type"))
        elif kind == "emptyDir":
            source = volume.get("emptyDir") or {}
            medium = source.get("medium") or ""
            if medium not in ("", "Memory"):
                raise SourceError(f'unknown storage medium "{medium}"')
            size = memory_size(pod, source.get("sizeLimit"), self._node_allocatable())
            await asyncio.to_thread(_make_empty_dir, path, medium == "Memory", size,
                                    _fs_group(pod))
        elif kind in CONTENT_TYPES:
            await self._write_content(pod, volume, path)
        else:
            raise SourceError(f"no volume plugin matched: {kind} volumes are not supported")

    async def _write_content(self, pod: Object, volume: Object, path: Path) -> bool:
        kind = volume_type(volume)
        payload = await self._payload(pod, volume, kind)
        in_memory = self.secrets_in_memory and kind in ("secret", "projected")
        size = memory_size(pod, None, self._node_allocatable()) if in_memory else None
        return await asyncio.to_thread(_write_volume, path, payload, in_memory, size,
                                       _fs_group(pod))

    async def _payload(self, pod: Object, volume: Object,
                       kind: str) -> dict[str, FileProjection]:
        source = volume.get(kind) or {}
        namespace = pod["metadata"].get("namespace", "")
        mode = payloads.mode_of(source.get("defaultMode"), payloads.DEFAULT_MODE)
        if kind == "configMap":
            return payloads.configmap_payload(source, namespace, self._configmap, mode)
        if kind == "secret":
            return payloads.secret_payload(source, namespace, self._secret, mode,
                                           name_field="secretName")
        if kind == "downwardAPI":
            return payloads.downward_payload(source.get("items") or [], self._latest(pod), mode,
                                             self._node_allocatable())
        tokens = await self._tokens_for(pod, volume.get("name", ""), source)
        return payloads.projected_payload(
            source, self._latest(pod), configmap=self._configmap, secret=self._secret,
            node_allocatable=self._node_allocatable(), tokens=tokens,
            fs_group=_fs_group(pod) is not None)

    def _latest(self, pod: Object) -> Object:
        uid = pod["metadata"]["uid"]
        latest = self._pod_info(uid) if self._pod_info is not None else None
        if latest is None or (latest.get("metadata") or {}).get("uid") != uid:
            return pod
        return latest

    async def _tokens_for(self, pod: Object, volume: str, source: Object) -> dict[int, str]:
        """Service account tokens by source index, renewed past 80% of their lifetime."""
        uid = pod["metadata"]["uid"]
        tokens: dict[int, str] = {}
        for index, projection in enumerate(source.get("sources") or []):
            wanted = projection.get("serviceAccountToken")
            if wanted is None or self._token is None:
                continue
            key = (uid, volume, index)
            cached = self._tokens.get(key)
            now = self._clock()
            if cached is None or now - cached[1] >= min(0.8 * cached[2], TOKEN_MAX_AGE):
                lifetime = int(wanted.get("expirationSeconds") or 3600)
                try:
                    token = await self._token(pod, wanted.get("audience") or None, lifetime)
                except Exception as exc:
                    if cached is None:
                        raise SourceError(f"failed to fetch token: {exc}") from exc
                    log.warning("token renewal failed pod=%s: %s", _key(pod), exc)
                else:
                    cached = (token, now, float(lifetime))
                    self._tokens[key] = cached
            tokens[index] = cached[0]
        return tokens


def _key(pod: Object) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _fs_group(pod: Object) -> int | None:
    group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return group if isinstance(group, int) and not isinstance(group, bool) else None


def _make_volume_dir(path: Path) -> bool:
    """Create the volume's directory (mode 0777, as an emptyDir); return whether it is new."""
    if path.is_dir():
        return False
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    path.mkdir(mode=0o777, exist_ok=True)
    os.chmod(path, 0o777)
    return True


def _make_empty_dir(path: Path, memory: bool, size: int | None, fs_group: int | None) -> None:
    fresh = _make_volume_dir(path)
    if memory and not mounts.is_mount_point(path):
        mounts.mount_tmpfs(path, size)
        fresh = True
    if fresh and fs_group is not None:
        own(path, fs_group, readonly=False)


def _write_volume(path: Path, payload: Mapping[str, FileProjection], memory: bool,
                  size: int | None, fs_group: int | None) -> bool:
    _make_volume_dir(path)
    if memory and not mounts.is_mount_point(path):
        mounts.mount_tmpfs(path, size)

    def set_perms(directory: Path) -> None:
        if fs_group is not None:
            own(path, fs_group, readonly=True)
            apply_fs_group(directory, fs_group, readonly=True)

    return AtomicWriter(path).write(payload, set_perms)


def _remove_pod_dir(root: Path) -> None:
    if not os.path.lexists(root):
        return
    if root.is_symlink():  # never follow it anywhere
        root.unlink()
        return
    for point in mounts.mounts_under(root):
        mounts.unmount(point)
    left = mounts.mounts_under(root)
    if left:
        raise OSError(f"still mounted below {root}: {', '.join(map(str, left))}")
    shutil.rmtree(root)
