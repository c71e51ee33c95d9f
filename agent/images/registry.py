"""Push an image archive to an OCI registry over the distribution HTTP API (no docker, no ctr).

For each blob: HEAD (skip when present), else POST an upload and PUT it whole with its digest;
then PUT the manifest under the reference's tag. A refusal surfaces as `RegistryError` carrying
the HTTP status and the registry's own error codes and messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

from agent.images import layout


class RegistryError(Exception):
    """The registry refused a request, or could not be reached."""


@dataclass(frozen=True)
class Reference:
    """`host[:port]/repository[:tag]` split into its parts."""

    host: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> Reference:
        normalized = layout.normalize_reference(ref)
        if "@" in normalized:
            raise RegistryError(f"push needs a tag, not a digest: {ref!r}")
        host, _, rest = normalized.partition("/")
        repository, _, tag = rest.rpartition(":")
        return cls(host, repository, tag)


def default_scheme(host: str) -> str:
    """Plain http for a registry on this machine's loopback, https elsewhere."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    loopback = name in ("localhost", "[::1]") or name.startswith("127.")
    return "http" if loopback else "https"


async def _error(response: aiohttp.ClientResponse, what: str) -> RegistryError:
    body = await response.text()
    detail = body.strip()[:300]
    try:
        errs = json.loads(body).get("errors") or []
        if errs:
            detail = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}" for e in errs)
    except (json.JSONDecodeError, AttributeError):
        pass
    return RegistryError(f"{what}: HTTP {response.status} {response.reason}: {detail}")


async def push(archive: layout.Archive, ref: str, *, scheme: str | None = None,
               image: layout.Image | None = None) -> str:
    """Push one image of `archive` (the first unless given) as `ref`; return its digest."""
    target = Reference.parse(ref)
    image = image or archive.images[0]
    base = f"{scheme or default_scheme(target.host)}://{target.host}/v2/{target.repository}/"
    manifest_blob = archive.blobs[image.manifest_digest]
    children = [d for d in archive.blobs if d != image.manifest_digest]
    timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for digest in children:
                await _push_blob(http, base, digest, archive.blobs[digest])
            url = base + f"manifests/{target.tag}"
            headers = {"Content-Type": image.manifest_media_type}
            async with http.put(url, data=manifest_blob, headers=headers) as response:
                if response.status not in (200, 201):
                    raise await _error(response, f"PUT {url}")
    except aiohttp.ClientError as exc:
        raise RegistryError(f"registry {target.host}: {exc}") from None
    return image.manifest_digest


async def _push_blob(http: aiohttp.ClientSession, base: str, digest: str, data: bytes) -> None:
    url = base + f"blobs/{digest}"
    async with http.head(url) as response:
        if response.status == 200:
            return
    start = base + "blobs/uploads/"
    async with http.post(start) as response:
        if response.status != 202:
            raise await _error(response, f"POST {start}")
        location = urljoin(start, response.headers["Location"])
    separator = "&" if "?" in location else "?"
    upload = f"{location}{separator}digest={digest}"
    headers = {"Content-Type": "application/octet-stream"}
    async with http.put(upload, data=data, headers=headers) as response:
        if response.status != 201:
            raise await _error(response, f"PUT blob {digest}")
