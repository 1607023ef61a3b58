"""Who is calling the gateway, and which events they may have.

Systems authenticate with their own credential (HTTP Basic, `username:secret` of issue 6's
identities, checked against the identity store as the worker's query API does). A system
receives only events whose targets include it, of the kinds it may read, of the hotels it
sees, and the refusals of its own events; the hub and the operator see everything. The
secret stays in memory only as long as the request, to publish as the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.exceptions import ConfigurationError
from streams.core.identities import (
    CredentialsRefused,
    Identity,
    Role,
    WatchedStore,
    authenticated,
    credentials_of,
    identity_of,
)
from streams.core.kinds import POLICIES, REFUSAL_TOPIC, System
from streams.gateway.messages import Routing
from streams.settings import HubSettings

ALLOWED_ROLES = frozenset({Role.SYSTEM, Role.HUB, Role.OPERATOR})
SYSTEMS = frozenset(system.value for system in System)


@dataclass(frozen=True)
class Caller:
    identity: Identity
    username: str
    secret: str | None
    """None with security off."""

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def sees_everything(self) -> bool:
        return self.identity.role in (Role.HUB, Role.OPERATOR)

    @property
    def readable_topics(self) -> frozenset[str]:
        """Base topics of what it may receive: its kinds, and refusals (of its own events)."""
        kinds = {POLICIES[kind].topic for kind in self.identity.reads}
        return frozenset({*kinds, REFUSAL_TOPIC})

    def admits(self, routing: Routing) -> bool:
        if not self.identity.sees_hotel(routing.hotel_id):
            return False
        if self.sees_everything:
            return True
        return (self.identity.name in routing.targets
                and routing.base_topic in self.readable_topics)


class Callers:
    """Authenticates `Authorization` headers against the identity store."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.store = WatchedStore(settings.identities_path) if settings.secured else None

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller, or `CredentialsRefused` (401, 403, 503) saying why not."""
        username, secret = credentials_of(authorization)
        if self.store is None:
            return self._unsecured(username)
        identity = authenticated(self.store, username, secret)
        if identity.role not in ALLOWED_ROLES:
            raise CredentialsRefused(403, "forbidden", f"identity {identity.name} "
                                     f"({identity.role}) may not use the gateway")
        return Caller(identity, username, secret)

    def identity(self, name: str) -> Identity | None:
        """The identity named `name` now (a webhook endpoint's system), None when gone."""
        if self.store is None:
            return self._unsecured(name).identity
        try:
            return self.store.current().get(name)
        except ConfigurationError:
            return None

    @staticmethod
    def _unsecured(username: str) -> Caller:
        """Security off: the username names the identity, no secret is checked."""
        name = identity_of(username)
        role = (Role.SYSTEM if name in SYSTEMS - {System.HOTEL_HUB.value}
                else Role.HUB if name == System.HOTEL_HUB.value else Role.OPERATOR)
        return Caller(Identity(name=name, role=role), username, None)
