"""Asking the worker that owns a key: one internal hop, never forwarded again.

Internal hops carry `scope=local`: the receiving worker answers from its own active
partitions only, so two workers that disagree about ownership for a moment answer 503
rather than bounce a request between them.

The hop carries the caller's own Authorization header, not the hub's: the owner
authenticates the caller again and applies the caller's hotels (`streams.worker.auth`), so
a forwarded query can never see more than the caller could ask the owner directly, and no
worker has to trust another's word about who asked.
"""

from __future__ import annotations

import aiohttp
from faust import web
from faust.types import AppT
from yarl import URL

from streams.core.query_params import OwnerUnavailable

FORWARD_TIMEOUT_S = 10.0
SERVED_BY = "X-Hotelhub-Served-By"
"""Response header naming the worker whose table answered (kept when forwarded)."""
SCOPE_LOCAL = "local"
_KEPT = ("Content-Type", "Retry-After", "WWW-Authenticate", SERVED_BY)
_PASSED = ("Authorization",)
"""Request headers the hop passes on (the caller's credentials); never logged."""


def is_local_query(request: web.Request) -> bool:
    return request.url.query.get("scope") == SCOPE_LOCAL


async def forward(app: AppT, view: web.View, request: web.Request, owner: URL
                  ) -> web.Response:
    """The owner's answer to the same GET, status and body as it gave them."""
    url = owner.with_path(request.url.path).with_query(
        {**request.url.query, "scope": SCOPE_LOCAL})
    passed = {name: request.headers[name] for name in _PASSED if name in request.headers}
    try:
        async with app.http_client.get(
            url, headers=passed, timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        ) as response:
            body = await response.read()
            headers = {name: response.headers[name] for name in _KEPT
                       if name in response.headers}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OwnerUnavailable(
            f"the worker at {owner} owning this key did not answer ({type(exc).__name__})"
        ) from exc
    content_type = headers.pop("Content-Type", "application/json")
    return view.bytes(body, status=response.status,
                      headers={**headers, "Content-Type": content_type})
