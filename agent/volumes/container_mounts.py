"""A container's volumeMounts as CRI mounts, the kubelet's makeMounts without /etc/hosts.

Each volumeMount becomes one `api.Mount` of the volume's directory (or host path). configMap,
secret, downwardAPI and projected volumes are always read-only, as in Kubernetes. A subPath
(or subPathExpr, expanded against the container's environment) mounts one entry of the volume:
it must be relative without `..`; a missing one is created as a directory with the volume's
mode; and its real path must stay inside the volume, so a symlink a container planted cannot
expose the node's files. A subPath mount is bound to what the path resolves to when the
container starts, so later configMap updates do not reach it (as in Kubernetes).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.envvars import ConfigError, expand
from cri.v1 import api_pb2 as api

Object = Mapping[str, Any]
VOLUME_TYPES = ("emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected")
ALWAYS_READ_ONLY = frozenset({"configMap", "secret", "downwardAPI", "projected"})
_PROPAGATION = {
    None: api.PROPAGATION_PRIVATE,
    "None": api.PROPAGATION_PRIVATE,
    "HostToContainer": api.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": api.PROPAGATION_BIDIRECTIONAL,
}


def volume_type(volume: Object) -> str:
    """The volume's source type; a volume without one is an emptyDir (API defaulting)."""
    sources = [key for key in volume if key != "name"]
    known = [key for key in sources if key in VOLUME_TYPES]
    if known:
        return known[0]
    return sources[0] if sources else "emptyDir"


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _sub_path(mount: Object, env: Sequence[tuple[str, str]] | None) -> str:
    sub_path = mount.get("subPath") or ""
    if mount.get("subPathExpr"):
        values = dict(env or ())
        missing: set[str] = set()

        def lookup(name: str) -> str:
            if not values.get(name):
                missing.add(name)
            return values.get(name, "")

        sub_path = expand(mount["subPathExpr"], lookup)
        if missing:
            raise ConfigError(f"missing value for {', '.join(sorted(missing))}")
    if sub_path.startswith("/"):
        raise ConfigError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise ConfigError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")
    return sub_path


def prepare_sub_path(volume_path: Path, sub_path: str, mount_name: str,
                     container_name: str) -> Path:
    """The real path of `sub_path` inside the volume, created as a directory when missing."""
    base = Path(os.path.realpath(volume_path))
    current = base
    for part in [p for p in sub_path.split("/") if p not in ("", ".")]:
        candidate = current / part
        if not os.path.lexists(candidate):
            try:
                perm = stat.S_IMODE(os.stat(current).st_mode) & 0o777
                os.mkdir(candidate, perm)
                os.chmod(candidate, perm)
            except FileExistsError:
                pass
            except OSError as exc:
                raise ConfigError(f'failed to create subPath directory for volumeMount '
                                  f'"{mount_name}" of container "{container_name}"') from exc
        current = Path(os.path.realpath(candidate))
        if not _inside(current, base):
            raise ConfigError(f'failed to prepare subPath for volumeMount "{mount_name}" of '
                              f'container "{container_name}"')
    return current


def container_mounts(pod: Object, container: Object, volume_paths: Mapping[str, Path | str], *,
                     env: Sequence[tuple[str, str]] | None = None) -> list[api.Mount]:
    """The CRI mounts of the container's volumeMounts, in order; raises ConfigError."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    name = container.get("name", "")
    mounts: list[api.Mount] = []
    for mount in container.get("volumeMounts") or []:
        volume_name = mount.get("name", "")
        if volume_name not in volume_paths or volume_name not in volumes:
            raise ConfigError(f'cannot find volume "{volume_name}" to mount into container '
                              f'"{name}"')
        kind = volume_type(volumes[volume_name])
        host_path = Path(volume_paths[volume_name])
        sub_path = _sub_path(mount, env)
        if sub_path:
            host_path = prepare_sub_path(host_path, sub_path, volume_name, name)
        container_path = mount.get("mountPath", "")
        if not container_path.startswith("/"):
            container_path = os.path.normpath("/" + container_path)
        propagation = mount.get("mountPropagation")
        if propagation not in _PROPAGATION:
            raise ConfigError(f'invalid MountPropagation mode: "{propagation}"')
        mounts.append(api.Mount(
            container_path=container_path,
            host_path=str(host_path),
            readonly=bool(mount.get("readOnly")) or kind in ALWAYS_READ_ONLY,
            recursive_read_only=mount.get("recursiveReadOnly") == "Enabled",
            selinux_relabel=kind != "hostPath",
            propagation=_PROPAGATION[propagation],
        ))
    return mounts
