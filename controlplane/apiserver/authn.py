"""Authentication: who is making an API request, from a client certificate or a bearer token.

A verified client certificate wins (CN is the user, O entries the groups, as kube-apiserver's
x509 authenticator reads them); otherwise `Authorization: Bearer <token>` is looked up in the
static token file. Every authenticated user is also in `system:authenticated`. A request that
proves nothing is refused with 401 "Unauthorized": there is no anonymous user. The TLS context
(pki.ssl_server_context) has already rejected certificates not signed by the cluster CA, so a
certificate seen here is trusted. Token lookups compare digests in constant time.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from controlplane.api.errors import Unauthorized

AUTHENTICATED_GROUP = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated user, as RBAC sees it."""

    name: str
    groups: tuple[str, ...]
    uid: str = ""


def _authenticated(name: str, groups: list[str], uid: str = "") -> UserInfo:
    return UserInfo(name=name, groups=tuple(dict.fromkeys([*groups, AUTHENTICATED_GROUP])),
                    uid=uid)


def user_from_certificate(peercert: dict[str, Any] | None) -> UserInfo | None:
    """Return the user a verified peer certificate (`SSLObject.getpeercert()`) names, if any."""
    if not peercert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                name = value
            elif attr == "organizationName":
                groups.append(value)
    return _authenticated(name, groups) if name else None


@dataclass(frozen=True)
class _TokenEntry:
    digest: bytes  # sha256 of the token, so comparisons do not leak its length
    user: UserInfo


class TokenFile:
    """Kubernetes' static token file: CSV lines of `token,user,uid[,"group1,group2"]`."""

    def __init__(self, entries: list[_TokenEntry]) -> None:
        self._entries = entries  # immutable after load

    def __repr__(self) -> str:
        return f"<TokenFile {len(self._entries)} tokens>"

    @classmethod
    def load(cls, path: Path) -> TokenFile:
        """Read a token file; a line with fewer than 3 columns is an error, as in Kubernetes."""
        return cls.parse(path.read_text(), source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<token file>") -> TokenFile:
        """Parse token file text (see `load`); lines with an empty token are skipped."""
        entries: dict[bytes, _TokenEntry] = {}
        for lineno, record in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), 1):
            if not record:
                continue
            if len(record) < 3:
                raise ValueError(f"{source}:{lineno}: token file must have at least 3 columns "
                                 f"(token, user name, user uid), found {len(record)}")
            token, name, uid = record[0], record[1], record[2]
            if not token:
                continue
            groups = [g.strip() for g in record[3].split(",")] if len(record) > 3 else []
            digest = _digest(token)
            # A later duplicate replaces an earlier one, as in Kubernetes.
            entries[digest] = _TokenEntry(digest, _authenticated(name, [g for g in groups if g],
                                                                 uid))
        return cls(list(entries.values()))

    def authenticate(self, header_value: str | None) -> UserInfo | None:
        """Return the user an `Authorization: Bearer <token>` header value names, if any."""
        if not header_value:
            return None
        parts = header_value.split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return None
        digest = _digest(parts[1])
        found: UserInfo | None = None
        for entry in self._entries:  # no early exit: the time taken does not depend on a match
            if hmac.compare_digest(entry.digest, digest):
                found = entry.user
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def authenticate_request(request: web.Request, tokens: TokenFile | None) -> UserInfo:
    """Return the request's user from its client certificate, else its bearer token.

    Raise `Unauthorized` when neither identifies anyone.
    """
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        user = user_from_certificate(ssl_object.getpeercert())
        if user is not None:
            return user
    if tokens is not None:
        user = tokens.authenticate(request.headers.get("Authorization"))
        if user is not None:
            return user
    raise Unauthorized("Unauthorized")
