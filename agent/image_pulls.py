"""Image pulls for the pods of this node: pull policy, pull secrets, and back-off on failure.

`ensure(pod, container)` returns when the image is present, or raises `ImageError` with the
waiting reason Kubernetes shows (ErrImagePull, then ImagePullBackOff while the back-off of 10 s
doubling to 300 s runs; ErrImageNeverPull for policy Never). Events are the kubelet's: Pulling,
Pulled, Failed, BackOff. As in the kubelet, the back-off is kept per pod and image (another pod
of the same image tries its own pull), and entries idle for twice the maximum are dropped.
A container without imagePullPolicy gets the API's default: Always for `:latest` or no tag.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.client.events import Recorder
from cri import errors as cri_errors
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
Object = dict[str, Any]
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0


class ImageError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class _Backoff:
    failures: int
    until: float
    message: str


def _registry_of(image: str) -> str:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def auth_for(image: str, secrets: list[Object]) -> api.AuthConfig | None:
    """The credentials of the first pull secret naming the image's registry."""
    registry = _registry_of(image)
    for secret in secrets:
        raw = (secret.get("data") or {}).get(".dockerconfigjson") or (
            secret.get("data") or {}).get(".dockercfg")
        if not raw:
            continue
        try:
            config = json.loads(base64.b64decode(raw))
        except (ValueError, TypeError):
            continue
        auths = config.get("auths", config)
        for server, entry in auths.items():
            host = server.split("://", 1)[-1].split("/", 1)[0]
            if host in (registry, f"index.{registry}") or (
                    registry == "docker.io" and "docker.io" in host):
                user, password = entry.get("username", ""), entry.get("password", "")
                if entry.get("auth") and not user:
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return api.AuthConfig(username=user, password=password, server_address=host)
    return None


def default_pull_policy(image: str) -> str:
    """The API's default imagePullPolicy: Always for `:latest` or no tag, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _key(pod: Object, image: str) -> tuple[str, str]:
    return str(pod["metadata"].get("uid", "")), image


class ImageManager:
    def __init__(self, runtime: Any, recorder: Recorder, *,
                 secret: Callable[[str, str], Object | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.secret = secret
        self.clock = clock
        self._backoff: dict[tuple[str, str], _Backoff] = {}  # (pod uid, image) -> failures

    def __repr__(self) -> str:
        return f"<ImageManager backing-off={len(self._backoff)}>"

    async def ensure(self, pod: Object, container: Object) -> None:
        image = str(container["image"])
        policy = container.get("imagePullPolicy") or default_pull_policy(image)
        present = await self.runtime.image_status(image) is not None
        if policy == "Never":
            if not present:
                message = f'Container image "{image}" is not present with pull policy of Never'
                self.recorder.event(pod, "Warning", "ErrImageNeverPull", message)
                raise ImageError("ErrImageNeverPull", message)
            return
        if present and policy == "IfNotPresent":
            self.recorder.event(pod, "Normal", "Pulled",
                                f'Container image "{image}" already present on machine')
            return
        self._forget_idle()
        backoff = self._backoff.get(_key(pod, image))
        if backoff is not None and self.clock() < backoff.until:
            message = f'Back-off pulling image "{image}"'
            self.recorder.event(pod, "Normal", "BackOff", message)
            raise ImageError("ImagePullBackOff", message)
        await self._pull(pod, image)

    def _forget_idle(self) -> None:
        """Drop back-offs that ended more than twice the maximum ago (pods long gone)."""
        now = self.clock()
        for key in [k for k, b in self._backoff.items() if now - b.until > 2 * BACKOFF_MAX]:
            del self._backoff[key]

    async def _pull(self, pod: Object, image: str) -> None:
        namespace = pod["metadata"].get("namespace", "")
        secrets = [s for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []
                   if (s := self.secret(namespace, ref.get("name", ""))) is not None]
        self.recorder.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = self.clock()
        try:
            await self.runtime.pull_image(image, auth=auth_for(image, secrets))
        except cri_errors.CRIError as exc:
            previous = self._backoff.get(_key(pod, image))
            failures = previous.failures + 1 if previous else 1
            delay = min(BACKOFF_START * 2 ** (failures - 1), BACKOFF_MAX)
            message = f'Failed to pull image "{image}": {exc.details}'
            self._backoff[_key(pod, image)] = _Backoff(failures, self.clock() + delay, message)
            self.recorder.event(pod, "Warning", "Failed", message)
            self.recorder.event(pod, "Warning", "Failed", "Error: ErrImagePull")
            raise ImageError("ErrImagePull", message) from None
        self._backoff.pop(_key(pod, image), None)
        took = self.clock() - started
        self.recorder.event(pod, "Normal", "Pulled",
                            f'Successfully pulled image "{image}" in {took:.3f}s')
