"""Is Kafka there? A Kafka Metadata request over a plain socket, no client library."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from streams.ops.broker.config import LOOPBACK

_METADATA_KEY = 3
_METADATA_VERSION = 8  # the newest non-flexible version; Kafka 3.x, 4.x and Redpanda serve it


@dataclass(frozen=True)
class ClusterAnswer:
    """What a Kafka Metadata request returned."""

    cluster_id: str | None
    controller_id: int
    broker_count: int


def probe_kafka(bootstrap_servers: str, *, timeout_s: float) -> ClusterAnswer | None:
    """Ask the first reachable bootstrap server for cluster metadata; None if none answers.

    A listening port is not a ready broker: a KRaft broker only serves requests once
    its controller has unfenced it, so an answer here means clients will work.
    """
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            return _metadata(host.strip("[]") or LOOPBACK, int(port), timeout_s=timeout_s)
        except (OSError, ValueError, struct.error):
            continue
    return None


def _metadata(host: str, port: int, *, timeout_s: float) -> ClusterAnswer:
    client_id = b"hotelhub-probe"
    correlation_id = 1
    body = struct.pack(">iBBB", 0, 0, 0, 0)  # no topics; no auto-create; no ACL operations
    header = (
        struct.pack(">hhih", _METADATA_KEY, _METADATA_VERSION, correlation_id, len(client_id))
        + client_id
    )
    request = header + body
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        reply = _Reader(_read_exactly(sock, size))
    if reply.int32() != correlation_id:
        raise ValueError("Kafka answered another request")
    reply.int32()  # throttle_time_ms
    brokers = reply.int32()
    for _ in range(brokers):
        reply.int32()  # node_id
        reply.string()  # host
        reply.int32()  # port
        reply.string()  # rack
    cluster_id = reply.string()
    controller_id = reply.int32()
    return ClusterAnswer(cluster_id=cluster_id, controller_id=controller_id, broker_count=brokers)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    if not 0 <= size <= 16 * 1024 * 1024:
        raise ValueError(f"implausible Kafka frame size {size}")
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("Kafka closed the connection")
        chunks += chunk
    return bytes(chunks)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def int32(self) -> int:
        (value,) = struct.unpack_from(">i", self._data, self._at)
        self._at += 4
        return int(value)

    def string(self) -> str | None:
        (length,) = struct.unpack_from(">h", self._data, self._at)
        self._at += 2
        if length < 0:
            return None
        text = self._data[self._at : self._at + length].decode()
        self._at += length
        return text
