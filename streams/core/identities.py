"""Who is who: the hub's identities, their credentials, and what each may do.

An identity is a system (hotel-pms, hotel-member, hotel-saas, more by configuration), the
hub's workers, the operator/CI role, or the schema registry. Each holds one credential, or
two while its secret rotates, so clients move to the new secret without downtime. Kafka
keeps one SCRAM secret per user and mechanism, so every credential is a user of its own,
`<identity>.<n>`; the broker's ACLs name every user of an identity alike.

Secrets are random 256-bit tokens. The store keeps a salted SHA-256 of each (a slow hash
guards guessable passwords; these are not guessable) and a key derived from the secret
that signs the records the identity publishes (`streams.wire.signing`), never the secret.
A secret lives only in its own file (`<username>.secret`, mode 0600, `username:secret`,
as Confluent's `basic.auth.user.info` takes it) for the client that uses it.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from streams.core.exceptions import ConfigurationError
from streams.core.kinds import POLICIES, EventKind, System

log = logging.getLogger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
USERNAME = re.compile(r"^(?P<identity>[a-z][a-z0-9-]{1,62})\.(?P<number>[1-9][0-9]*)$")
SIGNING_CONTEXT = b"hotelhub record signing v1"
MAX_CREDENTIALS = 2
"""One in use and, while it rotates, the next: two valid at once, never more."""


class Role(StrEnum):
    SYSTEM = "system"
    """Publishes the kinds the policies let it publish; reads the kinds it is a target of."""
    HUB = "hub"
    """The hub's workers: read every event topic, alone write the derived and internal ones."""
    OPERATOR = "operator"
    """Operators and CI: registers schemas, manages identities, repairs dead letters."""
    REGISTRY = "registry"
    """The schema registry's own Kafka log."""


class AuthenticationError(ConfigurationError):
    """A credential is missing, unknown, revoked or wrong; the message never holds a secret."""


@dataclass(frozen=True)
class Credential:
    username: str
    created_at: str
    salt: str
    digest: str
    signing_key: str

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_digest(self.salt, secret), self.digest)


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    hotels: tuple[str, ...] = ("*",)
    """Hotels whose data this identity may query; `*` is every hotel."""
    extra_reads: tuple[EventKind, ...] = ()
    """Kinds a configured system reads beyond those it is a target of."""
    credentials: tuple[Credential, ...] = field(default=())

    @property
    def publishes(self) -> frozenset[EventKind]:
        """Kinds this identity may publish: the policies' publishers decide, never the caller."""
        if self.role is Role.HUB:
            return frozenset(k for k, p in POLICIES.items() if System.HOTEL_HUB in p.publishers)
        if self.role is not Role.SYSTEM:
            return frozenset()
        return frozenset(k for k, p in POLICIES.items() if self.name in p.publishers)

    @property
    def reads(self) -> frozenset[EventKind]:
        if self.role in (Role.HUB, Role.OPERATOR):
            return frozenset(POLICIES)
        if self.role is not Role.SYSTEM:
            return frozenset()
        targeted = {k for k, p in POLICIES.items() if self.name in p.targets}
        return frozenset(targeted | set(self.extra_reads))

    def sees_hotel(self, hotel_id: str) -> bool:
        return "*" in self.hotels or hotel_id in self.hotels

    @property
    def usernames(self) -> tuple[str, ...]:
        return tuple(c.username for c in self.credentials)


DEFAULT_IDENTITIES: tuple[tuple[str, Role], ...] = (
    (System.HOTEL_PMS.value, Role.SYSTEM),
    (System.HOTEL_MEMBER.value, Role.SYSTEM),
    (System.HOTEL_SAAS.value, Role.SYSTEM),
    (System.HOTEL_HUB.value, Role.HUB),
    ("operator", Role.OPERATOR),
    ("schema-registry", Role.REGISTRY),
)
"""What the embedded set-up creates on first start."""


@dataclass(frozen=True)
class IssuedSecret:
    """A secret just made: shown once, written to its file, never stored elsewhere."""

    identity: str
    username: str
    secret: str
    path: Path

    @property
    def user_info(self) -> str:
        return f"{self.username}:{self.secret}"


def signing_key(secret: str) -> bytes:
    """The key a credential signs records with; the client derives it from its secret."""
    return hmac.new(secret.encode(), SIGNING_CONTEXT, hashlib.sha256).digest()


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def identity_of(username: str) -> str:
    """`hotel-pms.2` -> `hotel-pms`; a name without a number is its own identity."""
    found = USERNAME.match(username)
    return found["identity"] if found else username


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigurationError(
            f"identity name {name!r} is not valid: lower-case letters, digits and '-', "
            "starting with a letter, 2 to 63 characters"
        )
    return name


class IdentityStore:
    """The identities of one deployment, kept in one JSON file (mode 0600).

    Reads are snapshots: `load` once, or `IdentityStore.watching(path)` in a server, which
    re-reads when the file changes so a rotation or revocation takes effect at once.
    Writes go through `editing()`, under a file lock, replacing the file atomically.
    """

    def __init__(self, path: Path, identities: Mapping[str, Identity] | None = None) -> None:
        self.path = path
        self.identities: dict[str, Identity] = dict(identities or {})
        self._by_username: dict[str, tuple[Identity, Credential]] = {}
        self._reindex()

    def _reindex(self) -> None:
        self._by_username = {c.username: (i, c) for i in self.identities.values()
                             for c in i.credentials}

    # -- reading -----------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> IdentityStore:
        if not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text())
            identities = {name: _identity_from(name, body)
                          for name, body in raw["identities"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"identity store {path} is unreadable: {exc}") from exc
        return cls(path, identities)

    def get(self, name: str) -> Identity | None:
        return self.identities.get(name)

    def require(self, name: str) -> Identity:
        found = self.identities.get(name)
        if found is None:
            known = ", ".join(sorted(self.identities)) or "none"
            raise ConfigurationError(f"no identity {name!r} in {self.path} (known: {known})")
        return found

    def authenticate(self, username: str, secret: str) -> Identity | None:
        """The identity `username` (a credential's, or an identity's name) proves with `secret`.

        Every candidate is compared, so the time taken does not say which part was wrong.
        """
        if username in self._by_username:
            identity, credential = self._by_username[username]
            return identity if credential.matches(secret) else None
        identity_found = self.identities.get(username)
        if identity_found is None:
            return None
        matched = [c.matches(secret) for c in identity_found.credentials]
        return identity_found if any(matched) else None

    def signing_keys(self) -> dict[str, tuple[str, bytes]]:
        """username -> (identity, signing key), for the hub's check of record signatures."""
        return {c.username: (i.name, bytes.fromhex(c.signing_key))
                for i in self.identities.values() for c in i.credentials}

    # -- writing -----------------------------------------------------------------

    @contextmanager
    def editing(self) -> Iterator[IdentityStore]:
        """A fresh copy of the store under the file lock; saved when the block succeeds."""
        with locked(self.path):
            current = IdentityStore.load(self.path)
            yield current
            current.save()
            self.identities = dict(current.identities)
            self._reindex()

    def save(self) -> None:
        body = {"version": 1, "identities": {
            name: _identity_body(identity) for name, identity in sorted(self.identities.items())
        }}
        write_private(self.path, json.dumps(body, indent=2) + "\n")

    def put(self, identity: Identity) -> None:
        self.identities[identity.name] = identity
        self._reindex()

    def remove(self, name: str) -> Identity:
        identity = self.require(name)
        del self.identities[name]
        self._reindex()
        return identity


def new_credential(identity: Identity, secrets_dir: Path) -> tuple[Identity, IssuedSecret]:
    """`identity` with one more credential, and its secret (written to its file)."""
    if len(identity.credentials) >= MAX_CREDENTIALS:
        oldest = identity.credentials[0].username
        raise ConfigurationError(
            f"{identity.name} already has {MAX_CREDENTIALS} credentials "
            f"({', '.join(identity.usernames)}); revoke the old one first "
            f"(hotelhub identity revoke {identity.name} --credential {oldest})"
        )
    numbers = [int(found["number"]) for found in map(USERNAME.match, identity.usernames)
               if found]
    username = f"{identity.name}.{max(numbers, default=0) + 1}"
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16).hex()
    credential = Credential(
        username=username, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        salt=salt, digest=_digest(salt, secret), signing_key=signing_key(secret).hex(),
    )
    issued = IssuedSecret(identity.name, username, secret, secret_path(secrets_dir, username))
    write_private(issued.path, issued.user_info + "\n")
    write_private(secret_path(secrets_dir, identity.name), issued.user_info + "\n")
    return replace(identity, credentials=(*identity.credentials, credential)), issued


def without_credential(identity: Identity, username: str, secrets_dir: Path) -> Identity:
    """`identity` without credential `username`; its secret file is deleted."""
    if username not in identity.usernames:
        raise ConfigurationError(
            f"{identity.name} has no credential {username!r} "
            f"(it has {', '.join(identity.usernames) or 'none'})"
        )
    kept = tuple(c for c in identity.credentials if c.username != username)
    secret_path(secrets_dir, username).unlink(missing_ok=True)
    current = secret_path(secrets_dir, identity.name)
    if not kept:
        current.unlink(missing_ok=True)
    elif current.exists() and current.read_text().split(":", 1)[0] == username:
        newest = secret_path(secrets_dir, kept[-1].username)
        if newest.exists():
            write_private(current, newest.read_text())
    return replace(identity, credentials=kept)


def secret_path(secrets_dir: Path, name: str) -> Path:
    """`<identity>.secret` holds the identity's newest credential; `<username>.secret` each one."""
    return secrets_dir / f"{name}.secret"


def read_user_info(path: Path) -> tuple[str, str]:
    """(username, secret) from a secret file written by `new_credential` (or by hand)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise AuthenticationError(
            f"cannot read the secret file {path} ({exc.strerror}): the embedded set-up writes "
            "it on `hotelhub broker up`, `hotelhub identity create` elsewhere; or set "
            "HOTELHUB_CREDENTIALS_FILE, or HOTELHUB_SECURITY=none for plaintext development"
        ) from exc
    username, sep, secret = text.partition(":")
    if not sep or not username or not secret:
        raise AuthenticationError(f"secret file {path} does not hold 'username:secret'")
    return username, secret


@contextmanager
def locked(store_path: Path) -> Iterator[None]:
    """The store's file lock: whoever edits it, or applies it to a broker, sees it whole."""
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with open(store_path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (it may hold a secret), replacing atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _identity_body(identity: Identity) -> dict[str, object]:
    return {
        "role": identity.role.value,
        "hotels": list(identity.hotels),
        "extra_reads": [k.value for k in identity.extra_reads],
        "credentials": [vars(c) for c in identity.credentials],
    }


def _identity_from(name: str, body: Mapping[str, object]) -> Identity:
    credentials = body.get("credentials", [])
    hotels = body.get("hotels", ["*"])
    reads = body.get("extra_reads", [])
    for field_name, value in (("credentials", credentials), ("hotels", hotels),
                              ("extra_reads", reads)):
        if not isinstance(value, list):
            raise TypeError(f"identity {name!r}: {field_name} is not a list")
    assert isinstance(credentials, list) and isinstance(hotels, list)  # narrowed for mypy
    assert isinstance(reads, list)
    return Identity(
        name=name, role=Role(str(body["role"])), hotels=tuple(str(h) for h in hotels),
        extra_reads=tuple(EventKind(str(k)) for k in reads),
        credentials=tuple(Credential(**c) for c in credentials),
    )


class WatchedStore:
    """The store as its file now reads, for servers: re-read when the file changes.

    Checked at most once per `every_s`, so a rotation or revocation takes effect within
    that time without a restart, and a request costs a stat at most.
    """

    def __init__(self, path: Path, *, every_s: float = 1.0) -> None:
        self.path = path
        self.every_s = every_s
        self._store = IdentityStore.load(path)
        self._seen = self._stamp()
        self._checked = time.monotonic()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            found = self.path.stat()
        except FileNotFoundError:
            return None
        return found.st_mtime_ns, found.st_size

    def current(self) -> IdentityStore:
        now = time.monotonic()
        if now - self._checked >= self.every_s:
            self._checked = now
            stamp = self._stamp()
            if stamp != self._seen:
                self._store, self._seen = IdentityStore.load(self.path), stamp
        return self._store


def basic_credentials(header: str, *, encoding: str = "latin1") -> tuple[str, str]:
    """(username, secret) from an HTTP Basic `Authorization` header, as aiohttp's deprecated
    `BasicAuth.decode(header, encoding)` read it; `ValueError` when it is not one (the
    message never holds what was sent). The servers then ask `IdentityStore.authenticate`."""
    scheme, space, encoded = header.partition(" ")
    if not space:
        raise ValueError("the Authorization header has no credentials")
    if scheme.lower() != "basic":
        raise ValueError("the Authorization header is not HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.encode("ascii"), validate=True).decode(encoding)
    except binascii.Error:
        raise ValueError("the Basic credentials are not base64") from None
    username, colon, secret = decoded.partition(":")
    if not colon:
        raise ValueError("the Basic credentials are not 'username:secret'")
    return username, secret


def basic_header(username: str, secret: str) -> str:
    """The `Authorization` value that sends `username` and `secret` as HTTP Basic (UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")


class CredentialsRefused(Exception):
    """Why an HTTP caller is not let in: `status` (401, 403, 503), a `code` and a `detail`
    that never repeats what was sent (a caller that swapped username and secret would see
    its secret)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def credentials_of(authorization: str | None) -> tuple[str, str]:
    """(username, secret) of an `Authorization` header; `CredentialsRefused` (401) when there
    is none or it is not HTTP Basic. The query API and the gateway both ask here."""
    if authorization is None:
        raise CredentialsRefused(401, "unauthorized", "credentials required: HTTP Basic with "
                                 "an identity's username and secret")
    try:
        return basic_credentials(authorization, encoding="utf-8")
    except ValueError:
        # The parser's own message is not repeated: it says nothing the caller needs.
        raise CredentialsRefused(401, "unauthorized", "the Authorization header is not HTTP "
                                 "Basic credentials ('Basic ' + base64 of 'username:secret')"
                                 ) from None


def authenticated(store: WatchedStore, username: str, secret: str) -> Identity:
    """The identity these credentials prove, or `CredentialsRefused`: 503 when the store
    cannot be read, 401 when they are not accepted."""
    try:
        identities = store.current()
    except ConfigurationError as exc:
        log.error("the identity store cannot be read: %s", exc)
        raise CredentialsRefused(503, "unavailable",
                                 "the identity store cannot be read right now") from None
    identity = identities.authenticate(username, secret)
    if identity is None:
        raise CredentialsRefused(401, "unauthorized", "credentials not accepted: unknown user, "
                                 "revoked credential or wrong secret")
    return identity
