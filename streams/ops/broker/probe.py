"""Is Kafka there? A Kafka Metadata request over a plain socket, no client library.

On a SASL listener the request follows a SCRAM-SHA-512 exchange (SaslHandshake, then
SaslAuthenticate), written out here too: the probe runs every quarter second while the
node starts, and a client library would cost more than the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from streams.core.identities import AuthenticationError
from streams.ops.broker.config import LOOPBACK

_METADATA_KEY = 3
_METADATA_VERSION = 8  # the newest non-flexible version; Kafka 3.x, 4.x and Redpanda serve it
_SASL_HANDSHAKE_KEY = 17
_SASL_HANDSHAKE_VERSION = 1  # v1: the SCRAM messages travel in SaslAuthenticate requests
_SASL_AUTHENTICATE_KEY = 36
_SASL_AUTHENTICATE_VERSION = 1  # the newest non-flexible version
_MECHANISM = "SCRAM-SHA-512"
_CLIENT_ID = b"hotelhub-probe"


@dataclass(frozen=True)
class ClusterAnswer:
    """What a Kafka Metadata request returned."""

    cluster_id: str | None
    controller_id: int
    broker_count: int


@dataclass(frozen=True)
class ProbeLogin:
    """Who the probe authenticates as (SCRAM-SHA-512), and the CA of a TLS listener if any."""

    username: str
    secret: str
    cafile: Path | None = None

    def __repr__(self) -> str:
        return f"ProbeLogin(username={self.username!r}, secret='***')"


def probe_kafka(
    bootstrap_servers: str, *, timeout_s: float, login: ProbeLogin | None = None
) -> ClusterAnswer | None:
    """Ask the first reachable bootstrap server for cluster metadata; None if none answers.

    A listening port is not a ready broker: a KRaft broker only serves requests once
    its controller has unfenced it, so an answer here means clients will work. With
    `login`, the probe authenticates first; a broker that refuses the credential raises
    `AuthenticationError` (it answers, but not to us), never a silent None.
    """
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            return _metadata(host.strip("[]") or LOOPBACK, int(port), timeout_s=timeout_s,
                             login=login)
        except (OSError, ValueError, struct.error):
            continue
    return None


def _metadata(host: str, port: int, *, timeout_s: float, login: ProbeLogin | None
              ) -> ClusterAnswer:
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        sock: socket.socket = raw
        if login is not None and login.cafile is not None:
            context = ssl.create_default_context(cafile=str(login.cafile))
            sock = context.wrap_socket(raw, server_hostname=host)
        if login is not None:
            _scram_login(sock, login)
        body = struct.pack(">iBBB", 0, 0, 0, 0)  # no topics; no auto-create; no ACL operations
        reply = _call(sock, _METADATA_KEY, _METADATA_VERSION, 1, body)
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


def _call(sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
          ) -> _Reader:
    header = struct.pack(">hhih", api_key, version, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", _read_exactly(sock, 4))
    reply = _Reader(_read_exactly(sock, size))
    if reply.int32() != correlation_id:
        raise ValueError("Kafka answered another request")
    return reply


def _scram_login(sock: socket.socket, login: ProbeLogin) -> None:
    """RFC 5802 client side, as Kafka's SCRAM-SHA-512 listener expects it (no channel binding)."""
    mechanism = _MECHANISM.encode()
    handshake = _call(sock, _SASL_HANDSHAKE_KEY, _SASL_HANDSHAKE_VERSION, 2,
                      struct.pack(">h", len(mechanism)) + mechanism)
    if (code := handshake.int16()) != 0:
        raise AuthenticationError(
            f"Kafka does not take {_MECHANISM} on this listener (error {code}); is it the "
            "broker's SASL listener, or is HOTELHUB_SECURITY=none meant?"
        )
    nonce = secrets.token_urlsafe(24)
    user = login.username.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={user},r={nonce}"
    server_first = _authenticate(sock, f"n,,{first_bare}".encode(), 3, login.username).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise AuthenticationError("the broker's SCRAM nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac("sha512", login.secret.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha512(client_key).digest(), auth_message, "sha512")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    server_final = _authenticate(sock, f"{without_proof},p={proof.decode()}".encode(), 4,
                                 login.username).decode()
    server_key = hmac.digest(salted, b"Server Key", "sha512")
    expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha512")).decode()
    if not hmac.compare_digest(server_final, f"v={expected}"):
        raise AuthenticationError("the broker did not prove it knows our SCRAM credential")


def _authenticate(sock: socket.socket, message: bytes, correlation_id: int, username: str
                  ) -> bytes:
    reply = _call(sock, _SASL_AUTHENTICATE_KEY, _SASL_AUTHENTICATE_VERSION, correlation_id,
                  struct.pack(">i", len(message)) + message)
    code = reply.int16()
    error = reply.string()
    if code != 0:
        raise AuthenticationError(
            f"Kafka refused {username!r} ({error or f'error {code}'}): a wrong or revoked "
            "secret, or a credential the broker was never given (`hotelhub identity sync`)"
        )
    return reply.bytes()


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

    def int16(self) -> int:
        (value,) = struct.unpack_from(">h", self._data, self._at)
        self._at += 2
        return int(value)

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

    def bytes(self) -> bytes:
        (length,) = struct.unpack_from(">i", self._data, self._at)
        self._at += 4
        if length < 0:
            return b""
        data = self._data[self._at : self._at + length]
        self._at += length
        return data
