"""The live board: `GET /board[/{hotel_id}]`, one hotel's day at a glance, for people.

HTTP Basic as every gateway route, and only for an identity that sees the hotel. The page
is rendered on the server (`streams.gateway.board_page`) from what `BoardSources` gathers;
its script (`static/board.js`) fetches `/board/{hotel}/panels` again every few seconds and
keeps a live feed from `/ws`, which it opens with a short-lived board token
(`streams.gateway.board_tokens`), since a browser cannot send credentials on a WebSocket.

    GET /board, /board/{hotel_id}            the page (text/html)
    GET /board/{hotel_id}/panels             its refreshed part (an HTML fragment)
    GET /board/{hotel_id}/state.json         the same data as JSON
    GET /board/{hotel_id}/token              a fresh token for /ws?board_token=
    GET /board/board.js, /board/board.css    the static files (no data, no credentials)
"""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response

from streams.core.identities import CredentialsRefused, identity_of
from streams.gateway.board_data import BoardSources
from streams.gateway.board_page import page, panels
from streams.gateway.board_tokens import BoardTokens
from streams.gateway.callers import ALLOWED_ROLES, Caller
from streams.gateway.errors import ApiError
from streams.gateway.service import Gateway

TOKEN_PARAMETER = "board_token"
STATIC = {"board.js": "text/javascript; charset=utf-8", "board.css": "text/css; charset=utf-8"}


@cache
def _static(name: str) -> bytes:
    return (resources.files("streams.gateway") / "static" / name).read_bytes()


def _security_headers(request: Request) -> dict[str, str]:
    host = request.headers.get("host", "")
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"),
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


class BoardRoutes:
    """The board's routes over one gateway, and the `/ws` caller its tokens stand for."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.tokens = BoardTokens.for_settings(gateway.settings)
        self.sources = BoardSources(gateway.settings, gateway.reader)
        self.router = APIRouter(include_in_schema=False)
        self._routes()

    def _viewer(self, request: Request, hotel_id: str) -> Caller:
        """The caller, if it may see `hotel_id`; else the API's 401 or 403 (`ApiError`, which
        the app answers as every other refusal)."""
        try:
            caller = self.gateway.callers.authenticate(request.headers.get("authorization"))
        except CredentialsRefused as refused:
            raise ApiError(refused.status, refused.code, refused.detail) from None
        if not caller.identity.sees_hotel(hotel_id):
            raise ApiError(403, "forbidden", f"identity {caller.name} may not see hotel "
                           f"{hotel_id}")
        return caller

    def socket_caller(self, socket: WebSocket) -> Caller:
        """Who opens `/ws`: a board token's identity, kept to its hotel, or HTTP Basic's."""
        token = socket.query_params.get(TOKEN_PARAMETER)
        if token is None:
            return self.gateway.callers.authenticate(socket.headers.get("authorization"))
        grant = self.tokens.verify(token)
        identity = self.gateway.callers.identity(identity_of(grant.username))
        secured = self.gateway.settings.secured
        if identity is None or (secured and grant.username not in identity.usernames):
            raise CredentialsRefused(401, "unauthorized", "board token refused: its "
                                     "credential no longer exists")
        if identity.role not in ALLOWED_ROLES or not identity.sees_hotel(grant.hotel_id):
            raise CredentialsRefused(403, "forbidden", f"identity {identity.name} may not "
                                     f"see hotel {grant.hotel_id}")
        return Caller(replace(identity, hotels=(grant.hotel_id,)), grant.username, None)

    def _routes(self) -> None:
        router, settings = self.router, self.gateway.settings

        for filename, media_type in STATIC.items():
            router.add_api_route(f"/board/{filename}", self._static_route(filename, media_type),
                                 methods=["GET"], response_class=Response)

        @router.get("/board/{hotel_id}", response_class=HTMLResponse)
        async def hotel_board(request: Request, hotel_id: str) -> Response:
            return await self._page(request, hotel_id)

        @router.get("/board", response_class=HTMLResponse)
        async def default_board(request: Request) -> Response:
            return await self._page(request, settings.default_hotel_id)

        @router.get("/board/{hotel_id}/panels", response_class=HTMLResponse)
        async def board_panels(request: Request, hotel_id: str) -> Response:
            caller = self._viewer(request, hotel_id)
            board = await self.sources.gather(caller, hotel_id)
            return HTMLResponse(panels(board), headers=_security_headers(request))

        @router.get("/board/{hotel_id}/state.json")
        async def board_state(request: Request, hotel_id: str) -> Response:
            caller = self._viewer(request, hotel_id)
            board = asdict(await self.sources.gather(caller, hotel_id))
            board["day"] = board["day"].isoformat()
            return JSONResponse(board, headers={"Cache-Control": "no-store"})

        @router.get("/board/{hotel_id}/token")
        async def board_token(request: Request, hotel_id: str) -> Response:
            caller = self._viewer(request, hotel_id)
            body: dict[str, Any] = {"token": self.tokens.issue(caller.username, hotel_id),
                                    "expires_in_s": self.tokens.ttl_s}
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @staticmethod
    def _static_route(filename: str, media_type: str) -> Any:
        async def serve() -> Response:
            return Response(_static(filename), media_type=media_type,
                            headers={"Cache-Control": "no-cache"})
        return serve

    async def _page(self, request: Request, hotel_id: str) -> Response:
        caller = self._viewer(request, hotel_id)
        board = await self.sources.gather(caller, hotel_id)
        token = self.tokens.issue(caller.username, hotel_id)
        return HTMLResponse(page(board, viewer=caller.name, token=token),
                            headers=_security_headers(request))
