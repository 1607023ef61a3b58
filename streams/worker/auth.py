"""Who may ask the query API: HTTP Basic against the identity store, and the hotels each sees.

With security on (`HOTELHUB_SECURITY=sasl`) every page asks for the credentials of an
identity in the store (`streams.core.identities`), read through a `WatchedStore`, so a
rotated or revoked credential counts within its watch interval without a restart:

* a page naming a hotel (`{hotel_id}` in its path) answers only an identity that sees
  the hotel (`Identity.hotels`, `*` for all): another hotel's data is a 403;
* `/metrics` covers every hotel (event counts, lag), so it needs an identity that sees
  them all: the operator, the hub, or one made for the scraper with hotels `*`
  (Prometheus sends it with `basic_auth` in its scrape config);
* `/health` stays open for load balancers and answers only serving or not; with
  credentials it adds the detail (partitions, why it is not serving).

No credentials or wrong ones are a 401 with `WWW-Authenticate: Basic realm="hotelhub"`.
A path that is not one of the hub's own pages is a 404 whatever the security: Faust's
built-in pages are switched off in `streams.worker.app`, and the index page Faust mounts
regardless is not served. The Authorization header, and any secret, is never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from streams.core.identities import (
    CredentialsRefused,
    Identity,
    Role,
    WatchedStore,
    authenticated,
    basic_header,
    credentials_of,
)
from streams.settings import HubSettings

log = logging.getLogger(__name__)

REALM = "hotelhub"
CHALLENGE = f'Basic realm="{REALM}"'
QUERYING_ROLES = frozenset({Role.SYSTEM, Role.HUB, Role.OPERATOR})
"""The registry's identity is for its Kafka log only; it never reads hotel data."""


class Access(StrEnum):
    """What a page asks of its caller (declared with each page, so none is forgotten)."""

    HOTEL = "hotel"
    """The path names a hotel: an identity that sees it."""
    EVERY_HOTEL = "every-hotel"
    """The answer covers every hotel: an identity that sees them all."""
    STATUS = "status"
    """Open; credentials, when sent, must be right and add the detail."""


@dataclass(frozen=True)
class Caller:
    """Who asked: the identity proven, or None when none was sent or security is off."""

    identity: Identity | None
    secured: bool

    @property
    def sees_details(self) -> bool:
        return not self.secured or self.identity is not None


CALLER = web.RequestKey("hotelhub.caller", Caller)
OPEN = Caller(identity=None, secured=False)


class Refused(CredentialsRefused):
    """A request the guard answers itself; the detail never holds a secret."""

    def response(self) -> web.Response:
        headers = {hdrs.WWW_AUTHENTICATE: CHALLENGE} if self.status == 401 else {}
        if self.status == 503:
            headers[hdrs.RETRY_AFTER] = "2"
        return web.json_response({"error": self.code, "detail": self.detail},
                                 status=self.status, headers=headers)


def sees_every_hotel(identity: Identity) -> bool:
    return "*" in identity.hotels


class QueryGuard:
    """Decides, per request, whether the caller may have the page; the web app's middleware.

    `store` is None when security is off: every page of the hub is open, as before.
    """

    def __init__(self, store: WatchedStore | None) -> None:
        self.store = store
        self.pages: dict[str, Access] = {}

    @classmethod
    def for_settings(cls, settings: HubSettings) -> QueryGuard:
        if not settings.secured:
            return cls(None)
        return cls(WatchedStore(settings.identities_path))

    def allow(self, path: str, access: Access) -> None:
        """Serve `path` (a route pattern as given to `app.page`) to callers `access` admits."""
        self.pages["/" + path.lstrip("/")] = access

    def caller(self, authorization: str | None, access: Access,
               hotel_id: str | None = None) -> Caller:
        """The caller of a page with `access`, or `Refused` (401, 403, 503) saying why not."""
        if self.store is None:
            return OPEN
        if authorization is None and access is Access.STATUS:
            return Caller(identity=None, secured=True)
        identity = self._identity(self.store, authorization)
        if identity.role not in QUERYING_ROLES:
            raise Refused(403, "forbidden",
                          f"identity {identity.name} ({identity.role}) may not query the hub")
        if access is Access.HOTEL:
            if hotel_id is None or not identity.sees_hotel(hotel_id):
                raise Refused(403, "forbidden",
                              f"identity {identity.name} may not see hotel {hotel_id}")
        elif access is Access.EVERY_HOTEL and not sees_every_hotel(identity):
            raise Refused(403, "forbidden",
                          f"identity {identity.name} does not see every hotel, and this "
                          "page covers them all")
        return Caller(identity=identity, secured=True)

    @staticmethod
    def _identity(store: WatchedStore, authorization: str | None) -> Identity:
        try:
            return authenticated(store, *credentials_of(authorization))
        except CredentialsRefused as refused:
            raise Refused(refused.status, refused.code, refused.detail) from None

    def middleware(self) -> Middleware:
        """The aiohttp middleware: pages not declared with `allow` are not served (404)."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            match = request.match_info
            if match.http_exception is not None:
                return await handler(request)  # aiohttp's own 404 or 405
            resource = match.route.resource
            access = self.pages.get(resource.canonical) if resource is not None else None
            if access is None:
                return Refused(404, "not_found", f"no page {request.path}").response()
            try:
                caller = self.caller(request.headers.get(hdrs.AUTHORIZATION), access,
                                     match.get("hotel_id"))
            except Refused as refused:
                log.debug("query refused: %s %s %s", refused.status, refused.code,
                          request.path)
                return refused.response()
            request[CALLER] = caller
            return await handler(request)

        return guard

    def install(self, web_app: web.Application) -> None:
        web_app.middlewares.append(self.middleware())


def caller_of(request: Any) -> Caller:
    """The caller the guard admitted; none (so no detail) if the guard did not see it."""
    found = request.get(CALLER) if isinstance(request, web.Request) else None
    return found if isinstance(found, Caller) else Caller(identity=None, secured=True)


def authorization(settings: HubSettings) -> dict[str, str]:
    """The header a client of the query API sends as `settings`' identity ({} with security
    off); read from its secret file at each call, so a rotated secret is picked up."""
    found = settings.credentials()
    return {} if found is None else {hdrs.AUTHORIZATION: basic_header(*found)}
