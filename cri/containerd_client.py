"""An asyncio client for containerd's own gRPC services: events, content, images, leases.

The CRI lacks two things the agent needs: a prompt exit signal (CRI GetContainerEvents is
unimplemented in containerd 1.6; `Events/Subscribe` delivers `/tasks/exit` within milliseconds)
and a way to import an image tar without a registry (content + images services). Calls carry the
`containerd-namespace` metadata (`k8s.io`, where the CRI keeps its images and containers) and,
for writes made under a lease, `containerd-lease`, so unreferenced content is collected when the
lease goes away.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import field_mask_pb2

from cri import errors
from cri.channel import DEFAULT_TIMEOUT, Channel
from cri.containerd import content_pb2 as content
from cri.containerd import descriptor_pb2 as descriptor
from cri.containerd import events_pb2 as events
from cri.containerd import image_events_pb2 as image_events
from cri.containerd import images_pb2 as images
from cri.containerd import leases_pb2 as leases
from cri.containerd import task_events_pb2 as task_events

CRI_NAMESPACE = "k8s.io"
EVENTS = "/containerd.services.events.v1.Events/"
CONTENT = "/containerd.services.content.v1.Content/"
IMAGES = "/containerd.services.images.v1.Images/"
LEASES = "/containerd.services.leases.v1.Leases/"
WRITE_CHUNK = 1024 * 1024

# Event payloads by the type URL containerd puts in the Envelope's Any (a bare full name).
_EVENT_TYPES: dict[str, Any] = {
    cls.DESCRIPTOR.full_name: cls
    for module in (task_events, image_events)
    for cls in vars(module).values()
    if isinstance(cls, type) and hasattr(cls, "DESCRIPTOR") and hasattr(cls, "FromString")
}


@dataclass(frozen=True)
class Event:
    """One event from containerd: its topic (`/tasks/exit`), namespace and decoded payload."""

    topic: str
    namespace: str
    timestamp: float  # seconds since the epoch, as containerd stamped it
    payload: Any  # the decoded message (e.g. TaskExit), or the raw Any when the type is unknown


class ContainerdClient:
    """containerd's native services on one socket, in one namespace."""

    def __init__(self, socket: str, *, namespace: str = CRI_NAMESPACE,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket = socket
        self.namespace = namespace
        self._channel = Channel(socket, timeout=timeout,
                                metadata=[("containerd-namespace", namespace)])

    def __repr__(self) -> str:
        return f"<ContainerdClient {self.socket} namespace={self.namespace}>"

    async def __aenter__(self) -> ContainerdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    # -- events ----------------------------------------------------------------------------------

    async def subscribe(self, filters: Sequence[str] = ()) -> AsyncIterator[Event]:
        """Yield events as they happen. A filter list is OR; a comma inside one filter is AND.

        Example filters: `topic=="/tasks/exit"`, `topic~="/images/"`, `namespace==k8s.io`.
        """
        request = events.SubscribeRequest(filters=list(filters))
        async for envelope in self._channel.server_stream(EVENTS + "Subscribe", request,
                                                          events.Envelope):
            cls = _EVENT_TYPES.get(envelope.event.type_url)
            payload = cls.FromString(envelope.event.value) if cls is not None else envelope.event
            yield Event(
                topic=envelope.topic,
                namespace=envelope.namespace,
                timestamp=envelope.timestamp.seconds + envelope.timestamp.nanos / 1e9,
                payload=payload,
            )

    # -- leases ----------------------------------------------------------------------------------

    async def create_lease(self, labels: Mapping[str, str] | None = None) -> str:
        """Create a lease that protects what is written under it; return its id."""
        request = leases.CreateRequest(id=f"pinnace-{uuid.uuid4().hex[:16]}", labels=labels)
        response = await self._channel.unary(LEASES + "Create", request, leases.CreateResponse)
        return response.lease.id

    async def delete_lease(self, lease_id: str, *, sync: bool = False) -> None:
        await self._channel.unary(LEASES + "Delete", leases.DeleteRequest(id=lease_id, sync=sync),
                                  _Empty)

    async def add_lease_resource(self, lease_id: str, digest: str) -> None:
        request = leases.AddResourceRequest(
            id=lease_id, resource=leases.Resource(id=digest, type="content")
        )
        await self._channel.unary(LEASES + "AddResource", request, _Empty)

    # -- content ---------------------------------------------------------------------------------

    async def content_info(self, digest: str) -> content.Info | None:
        """Return the blob's info, or None when containerd does not have it."""
        try:
            response = await self._channel.unary(CONTENT + "Info",
                                                 content.InfoRequest(digest=digest),
                                                 content.InfoResponse)
        except errors.NotFound:
            return None
        return response.info

    async def write_blob(self, digest: str, data: bytes, *, labels: Mapping[str, str] | None = None,
                         lease_id: str | None = None) -> bool:
        """Store `data` as blob `digest` (verified by containerd); return False if it existed."""
        if lease_id and await self.content_info(digest) is not None:
            await self.add_lease_resource(lease_id, digest)
            if labels:
                await self._update_labels(digest, labels)
            return False
        ref = f"pinnace-{digest}-{uuid.uuid4().hex[:8]}"
        requests = []
        offset = 0
        while offset + WRITE_CHUNK < len(data):
            requests.append(content.WriteContentRequest(
                action=content.WRITE, ref=ref, total=len(data), expected=digest,
                offset=offset, data=data[offset:offset + WRITE_CHUNK],
            ))
            offset += WRITE_CHUNK
        requests.append(content.WriteContentRequest(
            action=content.COMMIT, ref=ref, total=len(data), expected=digest, offset=offset,
            data=data[offset:], labels=labels,
        ))
        metadata = [("containerd-lease", lease_id)] if lease_id else []
        try:
            await self._channel.stream_stream(CONTENT + "Write", requests,
                                              content.WriteContentResponse, metadata=metadata)
        except errors.AlreadyExists:
            return False
        except errors.CRIError:
            await self._abort(ref)
            raise
        return True

    async def _update_labels(self, digest: str, labels: Mapping[str, str]) -> None:
        info = content.Info(digest=digest, labels=labels)
        mask = field_mask_pb2.FieldMask(paths=[f"labels.{key}" for key in labels])
        await self._channel.unary(CONTENT + "Update",
                                  content.UpdateRequest(info=info, update_mask=mask),
                                  content.UpdateResponse)

    async def _abort(self, ref: str) -> None:
        try:
            await self._channel.unary(CONTENT + "Abort", content.AbortRequest(ref=ref), _Empty)
        except errors.CRIError:
            pass  # nothing was left to abort

    async def list_blobs(self, filters: Sequence[str] = ()) -> list[content.Info]:
        """Every blob containerd holds (in this namespace) matching `filters`."""
        request = content.ListContentRequest(filters=list(filters))
        return [info async for response in self._channel.server_stream(
                    CONTENT + "List", request, content.ListContentResponse,
                    timeout=self._channel.timeout)
                for info in response.info]

    async def delete_blob(self, digest: str) -> None:
        await self._channel.unary(CONTENT + "Delete", content.DeleteContentRequest(digest=digest),
                                  _Empty)

    # -- images ----------------------------------------------------------------------------------

    async def list_images(self, filters: Sequence[str] = ()) -> list[images.Image]:
        response = await self._channel.unary(IMAGES + "List",
                                             images.ListImagesRequest(filters=list(filters)),
                                             images.ListImagesResponse)
        return list(response.images)

    async def get_image(self, name: str) -> images.Image | None:
        try:
            response = await self._channel.unary(IMAGES + "Get", images.GetImageRequest(name=name),
                                                 images.GetImageResponse)
        except errors.NotFound:
            return None
        return response.image

    async def put_image(self, name: str, media_type: str, digest: str, size: int,
                        labels: Mapping[str, str] | None = None) -> None:
        """Create image `name` pointing at the descriptor, or repoint it if it exists."""
        image = images.Image(
            name=name, labels=labels,
            target=descriptor.Descriptor(media_type=media_type, digest=digest, size=size),
        )
        try:
            await self._channel.unary(IMAGES + "Create", images.CreateImageRequest(image=image),
                                      images.CreateImageResponse)
        except errors.AlreadyExists:
            mask = field_mask_pb2.FieldMask(paths=["target"])
            await self._channel.unary(IMAGES + "Update",
                                      images.UpdateImageRequest(image=image, update_mask=mask),
                                      images.UpdateImageResponse)

    async def delete_image(self, name: str, *, sync: bool = False) -> None:
        await self._channel.unary(IMAGES + "Delete",
                                  images.DeleteImageRequest(name=name, sync=sync), _Empty)


class _EmptyType:
    """Parser for google.protobuf.Empty responses."""

    @staticmethod
    def FromString(s: bytes) -> None:
        return None


_Empty = _EmptyType()
