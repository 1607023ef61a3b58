"""Record signatures: which identity produced a Kafka record, proved to the hub.

Kafka's ACLs say who may write a topic, but a consumer never learns who wrote a record,
and most event topics have several writers (a reservation comes from hotel-pms,
hotel-member or hotel-saas). So every producer signs its records, and the hub checks the
signature when a record enters it: the system a record speaks for is the identity whose
key signed it, never the `updated_by_system` the client wrote.

A producer adds two headers:

* `hub.credential`: its credential's username, e.g. `hotel-pms.2` (UTF-8);
* `hub.signature`: lower-case hex of HMAC-SHA256(signing key, signed bytes).

The signing key is HMAC-SHA256(secret, "hotelhub record signing v1"), the secret being the
one in the client's `username:secret` file (`streams.core.identities.signing_key`). The
signed bytes (format v1) are, where `field(b)` is the 4-byte big-endian unsigned length of
`b` followed by `b`, and a null key, value or header value is the 4 bytes FF FF FF FF:

    field(topic) field(key) field(value) count field(name_1) field(value_1) ...

`topic` is the kind's topic without the deployment's prefix (`HOTELHUB_TOPIC_PREFIX`):
`hotel.room` whether the record is written to `hotel.room` or `staging.hotel.room` (UTF-8).
A record signed for one kind's topic does not verify on another's, while a copy into
another prefix (a mirror, a replayed backlog) still does; deployments are kept apart by
their own credentials. `count` (4 bytes, big-endian) is how many headers whose name
starts with `ce_` the record carries, and those follow sorted by name, then value (bytes
compared unsigned, a null value first). Other headers (`hub.*`, tracing, `content-type`)
are not signed and may be added on the way. The hub verifies with the identity store's
keys: one HMAC per record.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streams.core.identities import WatchedStore, signing_key
from streams.settings import HubSettings

CREDENTIAL_HEADER = "hub.credential"
SIGNATURE_HEADER = "hub.signature"
PRINCIPAL_HEADER = "hub.principal"
"""Set by the hub on a record it forwards: the identity whose signature it verified."""
UNVERIFIED_HEADER = "hub.unverified"
"""Set by the hub instead of `hub.principal`: why the record's producer is not known."""
HUB_SET = frozenset({PRINCIPAL_HEADER, UNVERIFIED_HEADER})
"""Headers only the hub writes; a client's own are dropped before the hub adds its own."""
SIGNED_PREFIX = "ce_"
_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">I")
_SHOWN = 80
"""Characters of a client-chosen credential name a reason quotes at most."""

Header = tuple[str, bytes | None]


def _field(data: bytes | None) -> bytes:
    return _NULL if data is None else _LENGTH.pack(len(data)) + data


def _header_order(header: tuple[bytes, bytes | None]) -> tuple[bytes, bool, bytes]:
    name, value = header
    return name, value is not None, value or b""


def signed_bytes(topic: str, key: bytes | None, value: bytes | None,
                 headers: Iterable[Header]) -> bytes:
    """What a signature covers (format v1, see the module docstring)."""
    signed = [(name.encode(), data) for name, data in headers if name.startswith(SIGNED_PREFIX)]
    if any(data is None for _, data in signed):
        signed.sort(key=_header_order)
    else:
        signed.sort()  # (name, value) pairs of bytes: the same order, a third of the time
    pack = _LENGTH.pack
    parts = [_field(topic.encode()), _field(key), _field(value), pack(len(signed))]
    for name, data in signed:
        parts += (pack(len(name)), name, _NULL if data is None else pack(len(data)),
                  data or b"")
    return b"".join(parts)


def signature(signing_key: bytes, topic: str, key: bytes | None, value: bytes | None,
              headers: Iterable[Header]) -> str:
    """Hex HMAC-SHA256 of the signed bytes: the value of `hub.signature`."""
    return hmac.digest(signing_key, signed_bytes(topic, key, value, headers), "sha256").hex()


class Signer:
    """Signs the records one credential produces."""

    def __init__(self, username: str, secret: str) -> None:
        self.username = username
        self._key = signing_key(secret)

    @classmethod
    def of(cls, settings: HubSettings) -> Signer | None:
        """A signer with the settings' credential; None when security is off."""
        found = settings.credentials()
        return None if found is None else cls(*found)

    def sign(self, topic: str, key: bytes | None, value: bytes | None,
             headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """`headers` with this credential and its signature (replacing any earlier ones);
        `topic` without the deployment's prefix (`hotel.room`)."""
        kept = [(name, data) for name, data in headers
                if name not in (CREDENTIAL_HEADER, SIGNATURE_HEADER)]
        return [*kept, (CREDENTIAL_HEADER, self.username.encode()),
                (SIGNATURE_HEADER, signature(self._key, topic, key, value, kept).encode())]


@dataclass(frozen=True)
class Verified:
    """Who produced a record: the identity whose signature checked, or why none did."""

    identity: str | None
    problem: str | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """What the hub adds to the record it forwards."""
        if self.identity is not None:
            return [(PRINCIPAL_HEADER, self.identity.encode())]
        return [(UNVERIFIED_HEADER, (self.problem or "not verified").encode())]


class Verifier:
    """Checks record signatures against the identity store as its file now reads.

    The keys are read again only when the store changes (`WatchedStore`), so a rotation or
    revocation takes effect within a second and a record costs one HMAC.
    """

    def __init__(self, store: WatchedStore) -> None:
        self._watched = store
        self._store = store.current()
        self._keys = self._store.signing_keys()

    @classmethod
    def of(cls, settings: HubSettings) -> Verifier | None:
        """A verifier over the settings' identity store; None when security is off."""
        return cls(WatchedStore(settings.identities_path)) if settings.secured else None

    def _current_keys(self) -> dict[str, tuple[str, bytes]]:
        store = self._watched.current()
        if store is not self._store:
            self._store, self._keys = store, store.signing_keys()
        return self._keys

    def verify(self, topic: str, key: bytes | None, value: bytes | None,
               headers: Sequence[Header]) -> Verified:
        """Who signed the record; `topic` without the deployment's prefix (`hotel.room`)."""
        credentials = [data for name, data in headers if name == CREDENTIAL_HEADER]
        signatures = [data for name, data in headers if name == SIGNATURE_HEADER]
        if not credentials and not signatures:
            return Verified(None, "unsigned (no hub.credential and hub.signature headers)")
        if len(credentials) != 1 or len(signatures) != 1 or not credentials[0] \
                or signatures[0] is None:
            return Verified(None, "malformed signature: one hub.credential and one "
                                  "hub.signature header are needed")
        username = credentials[0].decode(errors="replace")
        known = self._current_keys().get(username)
        if known is None:
            return Verified(None, f"credential {username[:_SHOWN]!r} is unknown or revoked")
        identity, signing = known
        expected = signature(signing, topic, key, value, headers).encode()
        if not hmac.compare_digest(expected, signatures[0]):
            return Verified(None, f"bad signature for credential {username} (the record "
                                  "changed after it was signed, or was signed for another "
                                  "kind's topic or with another secret)")
        return Verified(identity)
