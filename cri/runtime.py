"""An asyncio client for the CRI (runtime.v1 RuntimeService and ImageService) over a unix socket.

`RuntimeClient` is what the agent talks to; `cri.fake.FakeRuntime` implements the same methods in
memory for unit tests. Requests and responses are the generated `cri.v1.api_pb2` messages, so the
full CRI vocabulary stays available; the methods unwrap the one field a caller almost always wants
(an id, a status, a list). Every call has a deadline: `timeout` per call, else the client's default.
"""

from __future__ import annotations

from collections.abc import Sequence

from cri.channel import DEFAULT_TIMEOUT, Channel
from cri.v1 import api_pb2 as api

RUNTIME = "/runtime.v1.RuntimeService/"
IMAGES = "/runtime.v1.ImageService/"
# Pulls and stops legitimately take longer than a status call.
PULL_TIMEOUT = 300.0


class RuntimeClient:
    """The CRI RuntimeService and ImageService of one containerd."""

    def __init__(self, socket: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket = socket
        self._channel = Channel(socket, timeout=timeout)

    def __repr__(self) -> str:
        return f"<RuntimeClient {self.socket}>"

    async def __aenter__(self) -> RuntimeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    # -- runtime ---------------------------------------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> api.VersionResponse:
        return await self._channel.unary(RUNTIME + "Version", api.VersionRequest(version="v1"),
                                         api.VersionResponse, timeout=timeout)

    async def status(self, *, verbose: bool = False,
                     timeout: float | None = None) -> api.StatusResponse:
        return await self._channel.unary(RUNTIME + "Status", api.StatusRequest(verbose=verbose),
                                         api.StatusResponse, timeout=timeout)

    async def run_pod_sandbox(self, config: api.PodSandboxConfig, *, runtime_handler: str = "",
                              timeout: float | None = None) -> str:
        """Create and start a sandbox; return its id."""
        request = api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        response = await self._channel.unary(RUNTIME + "RunPodSandbox", request,
                                             api.RunPodSandboxResponse, timeout=timeout)
        return response.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        await self._channel.unary(RUNTIME + "StopPodSandbox",
                                  api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
                                  api.StopPodSandboxResponse, timeout=timeout)

    async def remove_pod_sandbox(self, sandbox_id: str, *, timeout: float | None = None) -> None:
        await self._channel.unary(RUNTIME + "RemovePodSandbox",
                                  api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                                  api.RemovePodSandboxResponse, timeout=timeout)

    async def pod_sandbox_status(self, sandbox_id: str, *, verbose: bool = False,
                                 timeout: float | None = None) -> api.PodSandboxStatusResponse:
        request = api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        return await self._channel.unary(RUNTIME + "PodSandboxStatus", request,
                                         api.PodSandboxStatusResponse, timeout=timeout)

    async def list_pod_sandbox(self, filter: api.PodSandboxFilter | None = None, *,
                               timeout: float | None = None) -> Sequence[api.PodSandbox]:
        response = await self._channel.unary(RUNTIME + "ListPodSandbox",
                                             api.ListPodSandboxRequest(filter=filter),
                                             api.ListPodSandboxResponse, timeout=timeout)
        return list(response.items)

    async def create_container(self, sandbox_id: str, config: api.ContainerConfig,
                               sandbox_config: api.PodSandboxConfig, *,
                               timeout: float | None = None) -> str:
        """Create a container in a sandbox; return its id."""
        request = api.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config,
                                             sandbox_config=sandbox_config)
        response = await self._channel.unary(RUNTIME + "CreateContainer", request,
                                             api.CreateContainerResponse, timeout=timeout)
        return response.container_id

    async def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._channel.unary(RUNTIME + "StartContainer",
                                  api.StartContainerRequest(container_id=container_id),
                                  api.StartContainerResponse, timeout=timeout)

    async def stop_container(self, container_id: str, grace_seconds: int = 0, *,
                             timeout: float | None = None) -> None:
        """Stop a container: SIGTERM, then SIGKILL after `grace_seconds`."""
        request = api.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        deadline = timeout if timeout is not None else grace_seconds + self._channel.timeout
        await self._channel.unary(RUNTIME + "StopContainer", request,
                                  api.StopContainerResponse, timeout=deadline)

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._channel.unary(RUNTIME + "RemoveContainer",
                                  api.RemoveContainerRequest(container_id=container_id),
                                  api.RemoveContainerResponse, timeout=timeout)

    async def list_containers(self, filter: api.ContainerFilter | None = None, *,
                              timeout: float | None = None) -> Sequence[api.Container]:
        response = await self._channel.unary(RUNTIME + "ListContainers",
                                             api.ListContainersRequest(filter=filter),
                                             api.ListContainersResponse, timeout=timeout)
        return list(response.containers)

    async def container_status(self, container_id: str, *, verbose: bool = False,
                               timeout: float | None = None) -> api.ContainerStatus:
        request = api.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        response = await self._channel.unary(RUNTIME + "ContainerStatus", request,
                                             api.ContainerStatusResponse, timeout=timeout)
        return response.status

    async def update_container_resources(self, container_id: str,
                                         linux: api.LinuxContainerResources, *,
                                         timeout: float | None = None) -> None:
        request = api.UpdateContainerResourcesRequest(container_id=container_id, linux=linux)
        await self._channel.unary(RUNTIME + "UpdateContainerResources", request,
                                  api.UpdateContainerResourcesResponse, timeout=timeout)

    async def reopen_container_log(self, container_id: str, *,
                                   timeout: float | None = None) -> None:
        await self._channel.unary(RUNTIME + "ReopenContainerLog",
                                  api.ReopenContainerLogRequest(container_id=container_id),
                                  api.ReopenContainerLogResponse, timeout=timeout)

    async def exec_sync(self, container_id: str, cmd: Sequence[str], exec_timeout: int = 0, *,
                        timeout: float | None = None) -> api.ExecSyncResponse:
        """Run `cmd` in the container and wait for it (`exec_timeout` 0 = no limit there)."""
        request = api.ExecSyncRequest(container_id=container_id, cmd=list(cmd),
                                      timeout=exec_timeout)
        deadline = timeout if timeout is not None else (
            exec_timeout + self._channel.timeout if exec_timeout else None
        )
        return await self._channel.unary(RUNTIME + "ExecSync", request, api.ExecSyncResponse,
                                         timeout=deadline if deadline is not None else 3600.0)

    async def exec(self, request: api.ExecRequest, *, timeout: float | None = None) -> str:
        """Prepare a streaming exec; return the URL on containerd's streaming server."""
        response = await self._channel.unary(RUNTIME + "Exec", request, api.ExecResponse,
                                             timeout=timeout)
        return response.url

    async def attach(self, request: api.AttachRequest, *, timeout: float | None = None) -> str:
        response = await self._channel.unary(RUNTIME + "Attach", request, api.AttachResponse,
                                             timeout=timeout)
        return response.url

    async def port_forward(self, sandbox_id: str, ports: Sequence[int], *,
                           timeout: float | None = None) -> str:
        request = api.PortForwardRequest(pod_sandbox_id=sandbox_id, port=list(ports))
        response = await self._channel.unary(RUNTIME + "PortForward", request,
                                             api.PortForwardResponse, timeout=timeout)
        return response.url

    async def container_stats(self, container_id: str, *,
                              timeout: float | None = None) -> api.ContainerStats:
        response = await self._channel.unary(RUNTIME + "ContainerStats",
                                             api.ContainerStatsRequest(container_id=container_id),
                                             api.ContainerStatsResponse, timeout=timeout)
        return response.stats

    async def list_container_stats(self, filter: api.ContainerStatsFilter | None = None, *,
                                   timeout: float | None = None) -> Sequence[api.ContainerStats]:
        response = await self._channel.unary(RUNTIME + "ListContainerStats",
                                             api.ListContainerStatsRequest(filter=filter),
                                             api.ListContainerStatsResponse, timeout=timeout)
        return list(response.stats)

    # -- images ----------------------------------------------------------------------------------

    async def list_images(self, filter: api.ImageFilter | None = None, *,
                          timeout: float | None = None) -> Sequence[api.Image]:
        response = await self._channel.unary(IMAGES + "ListImages",
                                             api.ListImagesRequest(filter=filter),
                                             api.ListImagesResponse, timeout=timeout)
        return list(response.images)

    async def image_status(self, image: str, *, timeout: float | None = None) -> api.Image | None:
        """Return the image, or None when containerd does not have it."""
        request = api.ImageStatusRequest(image=api.ImageSpec(image=image))
        response = await self._channel.unary(IMAGES + "ImageStatus", request,
                                             api.ImageStatusResponse, timeout=timeout)
        return response.image if response.HasField("image") else None

    async def pull_image(self, image: str, *, auth: api.AuthConfig | None = None,
                         sandbox_config: api.PodSandboxConfig | None = None,
                         timeout: float | None = None) -> str:
        """Pull `image`; return the image reference (its id) containerd resolved."""
        request = api.PullImageRequest(image=api.ImageSpec(image=image), auth=auth,
                                       sandbox_config=sandbox_config)
        response = await self._channel.unary(IMAGES + "PullImage", request,
                                             api.PullImageResponse,
                                             timeout=PULL_TIMEOUT if timeout is None else timeout)
        return response.image_ref

    async def remove_image(self, image: str, *, timeout: float | None = None) -> None:
        await self._channel.unary(IMAGES + "RemoveImage",
                                  api.RemoveImageRequest(image=api.ImageSpec(image=image)),
                                  api.RemoveImageResponse, timeout=timeout)

    async def image_fs_info(self, *,
                            timeout: float | None = None) -> api.ImageFsInfoResponse:
        return await self._channel.unary(IMAGES + "ImageFsInfo", api.ImageFsInfoRequest(),
                                         api.ImageFsInfoResponse, timeout=timeout)
