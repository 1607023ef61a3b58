"""Short-lived tokens that let the live board's script open `/ws`.

A browser cannot put an Authorization header on a WebSocket, and the page must never hold
the identity's secret. So the authenticated page hands its script a token: the username,
one hotel and an expiry minutes away, signed (HMAC-SHA256) with a key only the gateway
has. `/ws?board_token=` accepts it in place of HTTP Basic, for that identity restricted to
that hotel, while the credential it was issued to still exists.

The key is derived from the gateway's own credential, so every gateway process of a
deployment accepts the tokens of the others, and rotating that credential voids them all.
With security off (no credential) each process makes a random key of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from streams.core.identities import CredentialsRefused
from streams.settings import HubSettings

TOKEN_TTL_S = 300.0
CONTEXT = b"hotelhub board websocket token v1"


@dataclass(frozen=True)
class Grant:
    """What a valid token lets through."""

    username: str
    hotel_id: str
    expires: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refused(why: str) -> CredentialsRefused:
    return CredentialsRefused(401, "unauthorized", f"board token refused: {why}; reload the "
                              "board for a new one")


class BoardTokens:
    def __init__(self, key: bytes, ttl_s: float = TOKEN_TTL_S) -> None:
        self._key, self.ttl_s = key, ttl_s

    @classmethod
    def for_settings(cls, settings: HubSettings) -> BoardTokens:
        found = settings.credentials()
        if found is None:
            return cls(secrets.token_bytes(32))
        return cls(hmac.new(found[1].encode(), CONTEXT, hashlib.sha256).digest())

    def issue(self, username: str, hotel_id: str, *, now: float | None = None) -> str:
        claims = {"u": username, "h": hotel_id, "e": round((now or time.time()) + self.ttl_s, 3)}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, *, now: float | None = None) -> Grant:
        """The grant of a token this gateway signed that has not expired; else
        `CredentialsRefused` (401) saying which of the two it is."""
        body, dot, signature = token.partition(".")
        if not dot or not hmac.compare_digest(signature, self._sign(body)):
            raise _refused("not signed by this deployment's gateway")
        try:
            claims = json.loads(_unb64(body))
            grant = Grant(str(claims["u"]), str(claims["h"]), float(claims["e"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise _refused("malformed") from None
        if grant.expires <= (now or time.time()):
            raise _refused("expired")
        return grant

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
