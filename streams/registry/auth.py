"""Who may call the registry: HTTP Basic against the hub's identities, then the role decides.

Every identity reads (GET, the lookup `POST /subjects/{s}` and the compatibility checks):
publishers and workers must find their contracts' ids. Only the operator role writes
(registers, deletes, changes compatibility or mode), so no system can delete a subject or
set compatibility to NONE under everyone else. Identities come from a `WatchedStore`, so
a rotation or revocation applies within its watch interval, without a restart.

Neither the Authorization header nor a secret is ever logged; a refused username is
logged only when it has the shape of a credential name (a secret typed into the user
field by mistake never reaches the log).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from streams.core.identities import (
    NAME,
    USERNAME,
    Identity,
    Role,
    WatchedStore,
    basic_credentials,
)
from streams.registry.exceptions import Forbidden, Unauthorized

log = logging.getLogger(__name__)

REALM = "hotelhub schema registry"
CHALLENGE = f'Basic realm="{REALM}"'
IDENTITY_KEY = web.RequestKey("identity", Identity)
"""The caller's identity, for handlers that want it (set only when auth is on)."""

READ_POSTS = frozenset({
    "/subjects/{subject}",
    "/compatibility/subjects/{subject}/versions",
    "/compatibility/subjects/{subject}/versions/{version}",
})
"""POST routes that only read: the schema lookup and the compatibility checks."""
READ_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def only_reads(request: web.Request) -> bool:
    """True for what every identity may do; anything else (an unknown POST too) is a write."""
    if request.method in READ_METHODS:
        return True
    if request.method != hdrs.METH_POST:
        return False
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in READ_POSTS


def _shown(username: str) -> str:
    return username if NAME.match(username) or USERNAME.match(username) else "<not a user name>"


def authenticate(header: str | None, identities: WatchedStore) -> Identity:
    """The identity an Authorization header proves; `Unauthorized` otherwise."""
    if not header:
        raise Unauthorized()
    try:
        username, secret = basic_credentials(header)
    except ValueError:
        raise Unauthorized("Unauthorized: the Authorization header is not HTTP Basic") from None
    identity = identities.current().authenticate(username, secret)
    if identity is None:
        log.warning("refused credentials of user %s", _shown(username))
        raise Unauthorized("Unauthorized: unknown user or wrong secret")
    return identity


def authorising(identities: WatchedStore) -> Middleware:
    """The middleware that authenticates every request and lets only the operator write."""

    @web.middleware
    async def _authorise(request: web.Request, handler: Handler) -> web.StreamResponse:
        identity = authenticate(request.headers.get(hdrs.AUTHORIZATION), identities)
        reads = only_reads(request)
        if not reads and identity.role is not Role.OPERATOR:
            log.warning("refused %s %s to %s (role %s)", request.method, request.path,
                        identity.name, identity.role.value)
            raise Forbidden(
                f"{identity.name} (role {identity.role.value}) may only read this registry; "
                "registering, deleting and changing compatibility or mode are the operator's "
                "(hotelhub schemas register)"
            )
        request[IDENTITY_KEY] = identity
        response = await handler(request)
        if not reads:  # an audit line per change: who changed what
            log.info("%s %s by %s: %d", request.method, request.path, identity.name,
                     response.status)
        return response

    return _authorise


__all__ = ["CHALLENGE", "IDENTITY_KEY", "REALM", "authenticate", "authorising", "only_reads"]
