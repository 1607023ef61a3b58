"""Webhook endpoints: what a system registers, and the addresses it may not register.

An endpoint belongs to one system and receives the events of that system's audience
(`streams.gateway.callers.Caller.admits`) matching its patterns, and every CRITICAL event
of that audience whatever its patterns (the design sends CRITICAL events by webhook always).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

SECRET_PREFIX = "whsec_"
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                            "instance-data", "instance-data.ec2.internal"})
METADATA_ADDRESSES = (ipaddress.ip_network("169.254.169.254/32"),
                      ipaddress.ip_network("fd00:ec2::254/128"),
                      ipaddress.ip_network("100.100.100.200/32"))
"""AWS/GCP/Azure (169.254.169.254), AWS IPv6, Alibaba: where cloud credentials are served."""


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    """Kept, not called: its events go to dead letters, to replay when it is resumed."""
    DISABLED = "disabled"
    """The receiver answered 410 Gone; re-enable by setting it active."""


class Endpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    system: str
    url: str
    patterns: list[str]
    secret: str = Field(repr=False)
    status: EndpointStatus = EndpointStatus.ACTIVE
    status_reason: str | None = None
    description: str = ""
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """The endpoint as the API shows it: never the secret."""
        return self.model_dump(mode="json", exclude={"secret"})


class UrlRefused(ValueError):
    """A URL the gateway will not call; the message says why."""


def new_endpoint_id() -> str:
    return "ep_" + uuid4().hex


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks: 24 to 64 bytes)."""
    import base64

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def now() -> datetime:
    return datetime.now(UTC)


def check_url(url: str, allowed: Iterable[str] = (), *, resolve: bool = True) -> str:
    """The URL if the gateway may call it: http(s), a host, and no link-local or cloud
    metadata address (literally or by DNS) unless its network is in `allowed`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(f"url {url!r}: only http and https URLs are called")
    host = parts.hostname
    if not host:
        raise UrlRefused(f"url {url!r} names no host")
    if parts.username or parts.password:
        raise UrlRefused("url: credentials in a webhook URL are not kept; the signature "
                         "authenticates the gateway to the receiver")
    try:
        port = parts.port
    except ValueError:
        raise UrlRefused(f"url {url!r}: the port is not a number from 0 to 65535") from None
    networks = [ipaddress.ip_network(text, strict=False) for text in allowed]
    if host.lower().rstrip(".") in METADATA_HOSTS:
        raise UrlRefused(f"url {url!r}: {host} is a cloud metadata service")
    for address in _addresses(host, port, resolve=resolve):
        # ::ffff:a.b.c.d reaches the IPv4 address a.b.c.d: judge that one
        address = getattr(address, "ipv4_mapped", None) or address
        if any(address in network for network in networks):
            continue
        if any(address in network for network in METADATA_ADDRESSES):
            raise UrlRefused(f"url {url!r}: {address} is a cloud metadata address")
        if address.is_link_local:
            raise UrlRefused(f"url {url!r}: {address} is link-local "
                             "(HOTELHUB_WEBHOOK_ALLOWED_NETWORKS allows a network)")
    return url


def _addresses(host: str, port: int | None, *, resolve: bool
               ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []  # unknown today: delivery will fail and retry, which the receiver sees
    found = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        found.append(ipaddress.ip_address(text))
    return found
