"""The identity store applied to a Kafka cluster: SCRAM credentials and ACLs.

The store (`streams.core.identities`) says who exists; this makes the broker agree, with
confluent-kafka's AdminClient (aiokafka can manage neither SCRAM credentials nor ACLs):

* every credential whose secret file is here becomes a SCRAM-SHA-512 user the broker does
  not have yet; users named like a credential (`<identity>.<n>`) that the store no longer
  holds are revoked, so a revoked secret stops working at once;
* the ACLs `streams.wire.acls` generates for a deployment (topic prefix, app id) are
  created, and bindings of revoked users, or on the deployment's resources but no longer
  generated, deleted. Bindings on other deployments' resources are left alone, so several
  deployments (or test sessions) can share one cluster.

On the embedded node this connects as the broker's super user; on an external cluster as
the operator identity. Every sync runs under the store's file lock, so a sync never
revokes a credential another process has just created. Secrets are never printed nor
logged: what comes back names users and files only.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AclBinding as KafkaAclBinding
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from pydantic import SecretStr

from streams.core.exceptions import BrokerUnavailable, ConfigurationError, HubError
from streams.core.identities import (
    DEFAULT_IDENTITIES,
    USERNAME,
    AuthenticationError,
    Identity,
    IdentityStore,
    Role,
    check_name,
    locked,
    new_credential,
    read_user_info,
    secret_path,
    without_credential,
)
from streams.core.kinds import EventKind
from streams.ops.broker.config import BROKER_USER
from streams.ops.broker.logins import admin_credentials, broker_login
from streams.ops.broker.probe import probe_kafka
from streams.settings import HubSettings
from streams.wire.acls import (
    AclBinding,
    Operation,
    Pattern,
    Resource,
    ResourcePattern,
    acl_bindings,
    deployment_resources,
    principal,
)

log = logging.getLogger(__name__)

SCRAM_ITERATIONS = 4096
"""Kafka's default for SCRAM-SHA-512; the secrets are random 256-bit tokens, not passwords."""
REVOKED_ITERATIONS = 4097
"""Marks a revoked user: its SCRAM credential was overwritten with a secret nobody kept.

Revoked users are overwritten, never deleted. Kafka 4.3's `ScramDelta.apply` drops the
mechanism's whole user map when, replaying the metadata log at start, a deleted user is
met while the map is still empty (HashMap order decides), so one deletion can make a
restarted node refuse every SCRAM login, its own included. An overwrite writes no
removal; the iteration count lets a later sync see the user is already revoked.
"""
RESERVED_NAMES = frozenset({BROKER_USER})

_RESOURCE_TYPES = {Resource.TOPIC: ResourceType.TOPIC, Resource.GROUP: ResourceType.GROUP,
                   Resource.TRANSACTIONAL_ID: ResourceType.TRANSACTIONAL_ID,
                   Resource.CLUSTER: ResourceType.BROKER}  # librdkafka's name for the cluster
_PATTERNS = {Pattern.LITERAL: ResourcePatternType.LITERAL,
             Pattern.PREFIXED: ResourcePatternType.PREFIXED}


@dataclass(frozen=True)
class Issued:
    """A credential just made: where its secret is, never the secret."""

    identity: str
    username: str
    path: Path


@dataclass(frozen=True)
class SyncReport:
    users_created: tuple[str, ...] = ()
    users_revoked: tuple[str, ...] = ()
    acls_created: int = 0
    acls_deleted: int = 0
    missing_secrets: tuple[str, ...] = ()
    """Credentials the broker lacks and whose secret file is gone: rotate those identities."""

    def summary(self) -> str:
        parts = [f"{len(self.users_created)} SCRAM user(s) created",
                 f"{len(self.users_revoked)} revoked",
                 f"{self.acls_created} ACL(s) created", f"{self.acls_deleted} deleted"]
        return ", ".join(parts)


@dataclass(frozen=True)
class SetUp:
    """What a secured `broker up` made sure of: the defaults exist and the broker has them."""

    identities_path: Path
    secrets_dir: Path
    created: tuple[Issued, ...]
    report: SyncReport


@dataclass
class _Plan:
    upserts: list[str] = field(default_factory=list)
    user_revocations: list[str] = field(default_factory=list)
    acl_creations: list[AclBinding] = field(default_factory=list)
    acl_deletions: list[KafkaAclBinding] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


# -- the store's identities ------------------------------------------------------------


def ensure_default_identities(settings: HubSettings) -> SetUp:
    """Create whichever of `DEFAULT_IDENTITIES` the store lacks, then `sync`."""
    created = create_missing_defaults(settings)
    report = sync(settings, fresh=[c.username for c in created])
    return SetUp(settings.identities_path, settings.secrets_dir, tuple(created), report)


def create_missing_defaults(settings: HubSettings) -> list[Issued]:
    """The default identities the store lacks, made in the store only (no broker involved)."""
    store = IdentityStore.load(settings.identities_path)
    created: list[Issued] = []
    if any(store.get(name) is None for name, _ in DEFAULT_IDENTITIES):
        with store.editing() as current:
            for name, role in DEFAULT_IDENTITIES:
                if current.get(name) is None:
                    identity, issued = new_credential(Identity(name, role), settings.secrets_dir)
                    current.put(identity)
                    created.append(Issued(name, issued.username, issued.path))
    return created


def create_identity(
    settings: HubSettings, name: str, role: Role, *, hotels: Sequence[str] = ("*",),
    reads: Sequence[EventKind] = (),
) -> tuple[Issued, SyncReport]:
    """A new identity with its first credential, applied to the broker at once."""
    check_name(name)
    if name in RESERVED_NAMES:
        raise ConfigurationError(f"{name!r} is the broker's own user; pick another name")
    if reads and role is not Role.SYSTEM:
        raise ConfigurationError(f"--reads is for systems only ({role.value} identities read "
                                 "what their role reads)")
    if not hotels or any(not h or ":" in h for h in hotels):
        raise ConfigurationError("hotels are hotel ids (no ':'), or '*' for every hotel")
    _refuse_overlap(settings, name)
    store = IdentityStore.load(settings.identities_path)
    login = _login(settings)
    with store.editing() as current:
        if current.get(name) is not None:
            raise ConfigurationError(
                f"identity {name!r} already exists; `hotelhub identity rotate {name}` gives it "
                "a new secret"
            )
        others = [o for o in current.identities if o.startswith(name) or name.startswith(o)]
        if others:
            raise ConfigurationError(_overlap_message(name, others[0]))
        fresh = Identity(name, role, hotels=tuple(hotels), extra_reads=tuple(reads))
        identity, secret = new_credential(fresh, settings.secrets_dir)
        current.put(identity)
    issued = Issued(name, secret.username, secret.path)
    return issued, _applied(settings, login=login, fresh=[issued.username])


def rotate_identity(settings: HubSettings, name: str) -> tuple[Issued, SyncReport]:
    """A second credential for `name`: both work until the old one is revoked."""
    store = IdentityStore.load(settings.identities_path)
    login = _login(settings)
    with store.editing() as current:
        identity, secret = new_credential(current.require(name), settings.secrets_dir)
        current.put(identity)
    issued = Issued(name, secret.username, secret.path)
    return issued, _applied(settings, login=login, fresh=[issued.username])


def revoke_identity(
    settings: HubSettings, name: str, *, credential: str | None = None
) -> tuple[list[str], SyncReport]:
    """Revoke one credential of `name`, or the whole identity; the broker refuses it at once.

    The admin login is read first: revoking the operator's own credential on an external
    cluster still reaches the broker.
    """
    store = IdentityStore.load(settings.identities_path)
    login = _login(settings)
    with store.editing() as current:
        identity = current.require(name)
        revoked = [credential] if credential is not None else list(identity.usernames)
        for username in revoked:
            identity = without_credential(identity, username, settings.secrets_dir)
        if credential is None:
            current.remove(name)
        else:
            current.put(identity)
    return revoked, _applied(settings, login=login, revoked=revoked)


def _refuse_overlap(settings: HubSettings, name: str) -> None:
    """A name that starts the hub's app id (or that it starts) would share its group prefixes."""
    taken = settings.app_id
    if taken.startswith(name) or name.startswith(taken):
        raise ConfigurationError(_overlap_message(name, taken))


def _overlap_message(name: str, other: str) -> str:
    return (f"identity name {name!r} and {other!r} start alike: consumer groups and "
            "transactional ids are granted by name prefix, so one would reach the other's; "
            "pick a name neither starts")


def _applied(settings: HubSettings, **kwargs: Any) -> SyncReport:
    """`sync`, with the store already changed: an unreachable broker says how to catch up."""
    try:
        return sync(settings, **kwargs)
    except BrokerUnavailable as exc:
        raise BrokerUnavailable(
            f"the identity store is updated but the broker is not: {exc}; once it answers, "
            "`hotelhub identity sync` (or `hotelhub broker up` for the embedded one) applies it"
        ) from exc


# -- applying them ---------------------------------------------------------------------


def sync(
    settings: HubSettings,
    *,
    deployments: Sequence[HubSettings] | None = None,
    fresh: Iterable[str] = (),
    revoked: Iterable[str] = (),
    login: tuple[str, str] | None = None,
) -> SyncReport:
    """Make the broker's SCRAM users and ACLs those of the store, for `deployments`.

    A deployment is a topic prefix and app id (default: `settings`' own); a test session
    syncs its own to grant its prefixed topics. `fresh` names credentials to (re)write even
    if the broker has a user of that name; `revoked` ones to revoke whatever they are named.
    """
    if not settings.secured:
        raise ConfigurationError("HOTELHUB_SECURITY=none: the broker enforces nothing to sync")
    with locked(settings.identities_path):
        store = IdentityStore.load(settings.identities_path)
        with _admin(settings, login) as admin:
            plan = _plan(admin, settings, store, deployments or [settings], set(fresh),
                         set(revoked))
            _apply(admin, plan, settings)
    report = SyncReport(tuple(plan.upserts), tuple(plan.user_revocations),
                        len(plan.acl_creations), len(plan.acl_deletions), tuple(plan.missing))
    log.info("identities applied to %s: %s", settings.bootstrap_servers, report.summary())
    return report


def forget_prefix(settings: HubSettings, prefix: str) -> int:
    """Delete every binding of the store's users on resources named `prefix`...; the count.

    For a test session's end: its topics are gone, so are the grants on them.
    """
    if not prefix or not settings.secured:
        return 0
    with locked(settings.identities_path), _admin(settings, None) as admin:
        doomed = [b for b in _existing(admin, settings)
                  if _ours(b.principal) and b.name.startswith(prefix)]
        _delete_acls(admin, doomed, settings)
    return len(doomed)


def broker_users(settings: HubSettings) -> dict[str, bool]:
    """SCRAM users the broker knows: True for one that works, False for a revoked one."""
    with _admin(settings, None) as admin:
        return {user: not _revoked(desc) for user, desc in _scram_users(admin, settings).items()}


def _revoked(description: Any) -> bool:
    return any(info.iterations == REVOKED_ITERATIONS
               for info in description.scram_credential_infos)


def _plan(admin: AdminClient, settings: HubSettings, store: IdentityStore,
          deployments: Sequence[HubSettings], fresh: set[str], revoked: set[str]) -> _Plan:
    plan = _Plan()
    identities = list(store.identities.values())
    live = {u for i in identities for u in i.usernames}
    on_broker = _scram_users(admin, settings)
    for username in sorted(live):
        usable = username in on_broker and not _revoked(on_broker[username])
        if usable and username not in fresh:
            continue
        if secret_path(settings.secrets_dir, username).exists():
            plan.upserts.append(username)
        else:
            plan.missing.append(username)
    plan.user_revocations = sorted(
        u for u, desc in on_broker.items()
        if u not in live and u != BROKER_USER and (u in revoked or USERNAME.match(u))
        and not _revoked(desc))
    wanted: set[AclBinding] = set()
    scope: set[ResourcePattern] = set()
    for deployment in deployments:
        wanted |= acl_bindings(identities, deployment)
        scope |= deployment_resources(identities, deployment)
    existing = _existing(admin, settings)
    have = {ours for b in existing if (ours := _from_kafka(b)) is not None}
    plan.acl_creations = sorted(wanted - have)
    live_principals = {principal(u) for u in live}
    revoked_principals = {principal(u) for u in revoked}
    for binding in existing:
        mine = _from_kafka(binding)
        gone = binding.principal in revoked_principals or (
            _ours(binding.principal) and binding.principal not in live_principals)
        stale = (mine is not None and mine.principal in live_principals and mine.on in scope
                 and mine not in wanted)
        if gone or stale:
            plan.acl_deletions.append(binding)
    return plan


def _apply(admin: AdminClient, plan: _Plan, settings: HubSettings) -> None:
    """Credentials and grants first, removals last (a removal may be of who is connected)."""
    timeout = _timeout(settings)
    upserts: list[Any] = []
    for username in plan.upserts:
        _, secret = read_user_info(secret_path(settings.secrets_dir, username))
        upserts.append(UserScramCredentialUpsertion(
            username, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            secret.encode()))
    if upserts:
        _wait_all(admin.alter_user_scram_credentials(upserts, request_timeout=timeout),
                  "create SCRAM users", settings)
    if plan.acl_creations:
        _wait_all(admin.create_acls([_to_kafka(b) for b in plan.acl_creations],
                                    request_timeout=timeout), "create ACLs", settings)
    if plan.user_revocations:
        overwrites: list[Any] = [UserScramCredentialUpsertion(
            u, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, REVOKED_ITERATIONS),
            secrets.token_bytes(32)) for u in plan.user_revocations]
        _wait_all(admin.alter_user_scram_credentials(overwrites, request_timeout=timeout),
                  "revoke SCRAM users", settings)
    _delete_acls(admin, plan.acl_deletions, settings)


def _delete_acls(admin: AdminClient, doomed: list[KafkaAclBinding], settings: HubSettings
                 ) -> None:
    if doomed:
        filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal,
                                    b.host, b.operation, b.permission_type) for b in doomed]
        _wait_all(admin.delete_acls(filters, request_timeout=_timeout(settings)),
                  "delete ACLs", settings)


def _scram_users(admin: AdminClient, settings: HubSettings) -> dict[str, Any]:
    found = admin.describe_user_scram_credentials(request_timeout=_timeout(settings))
    assert isinstance(found, Future)
    result = _wait(found, "list SCRAM users", settings)
    return dict(result)


def _existing(admin: AdminClient, settings: HubSettings) -> list[KafkaAclBinding]:
    anything: Any = None  # a filter's None matches any name, principal and host
    every = AclBindingFilter(ResourceType.ANY, anything, ResourcePatternType.ANY, anything,
                             anything, AclOperation.ANY, AclPermissionType.ANY)
    found = _wait(admin.describe_acls(every, request_timeout=_timeout(settings)),
                  "list ACLs", settings)
    return list(found)


def _ours(who: str) -> bool:
    """A principal named like a credential of some identity: this store's to manage."""
    return who.startswith("User:") and USERNAME.match(who[5:]) is not None


def _to_kafka(binding: AclBinding) -> KafkaAclBinding:
    return KafkaAclBinding(_RESOURCE_TYPES[binding.on.resource], binding.on.name,
                           _PATTERNS[binding.on.pattern], binding.principal, "*",
                           AclOperation[binding.operation.name], AclPermissionType.ALLOW)


def _from_kafka(binding: KafkaAclBinding) -> AclBinding | None:
    """Ours if it is an ALLOW from any host of a kind `streams.wire.acls` generates."""
    if binding.permission_type != AclPermissionType.ALLOW or binding.host != "*":
        return None
    resource = next((r for r, t in _RESOURCE_TYPES.items() if t == binding.restype), None)
    pattern = next((p for p, t in _PATTERNS.items() if t == binding.resource_pattern_type),
                   None)
    operation = Operation.__members__.get(str(getattr(binding.operation, "name", "")))
    if resource is None or pattern is None or operation is None:
        return None
    return AclBinding(ResourcePattern(resource, binding.name, pattern), binding.principal,
                      operation)


# -- the admin connection --------------------------------------------------------------


def _login(settings: HubSettings) -> tuple[str, str]:
    if not settings.secured:
        raise ConfigurationError("HOTELHUB_SECURITY=none: identities need security on")
    return admin_credentials(settings)


def _timeout(settings: HubSettings) -> float:
    return max(10.0, 2 * settings.connect_timeout_s)



@contextmanager
def _admin(settings: HubSettings, login: tuple[str, str] | None) -> Iterator[AdminClient]:
    username, secret = login or _login(settings)
    if settings.uses_embedded_broker and probe_kafka(
            settings.bootstrap_servers, timeout_s=settings.connect_timeout_s,
            login=broker_login(settings)) is None:
        raise BrokerUnavailable(
            f"the embedded broker at {settings.bootstrap_servers} does not answer; "
            "`hotelhub broker up` starts it (and applies the identity store)")
    acting = settings.model_copy(update={"username": username, "password": SecretStr(secret)})
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers, **acting.confluent_auth(),
        "socket.connection.setup.timeout.ms": int(settings.connect_timeout_s * 1000),
        "logger": log,
    }
    yield AdminClient(config)


def _wait(future: Future[Any], what: str, settings: HubSettings) -> Any:
    try:
        return future.result(timeout=_timeout(settings) + 5)
    except KafkaException as exc:
        raise _error(exc, what, settings) from exc
    except TimeoutError as exc:
        raise BrokerUnavailable(
            f"Kafka at {settings.bootstrap_servers} did not answer ({what})") from exc


def _wait_all(futures: dict[Any, Future[Any]], what: str, settings: HubSettings) -> None:
    for future in futures.values():
        _wait(future, what, settings)


def _error(exc: KafkaException, what: str, settings: HubSettings) -> HubError:
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    name = error.name() if error is not None else type(exc).__name__
    text = error.str() if error is not None else str(exc)
    where = settings.bootstrap_servers
    if name in ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"):
        return AuthenticationError(f"Kafka at {where} refused the admin login ({what}): {text}")
    if name in ("CLUSTER_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED"):
        return AuthenticationError(
            f"Kafka at {where} does not let this login {what} ({name}): identities are "
            "managed as the operator, or as the broker itself on the embedded node")
    if name in ("_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN", "_RESOLVE"):
        return BrokerUnavailable(f"Kafka at {where} did not answer ({what}): {text}")
    return HubError(f"Kafka at {where} could not {what}: {name}: {text}")
