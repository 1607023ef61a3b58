"""The gateway's API errors: one JSON shape (`ErrorOut`) for every refusal."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

REALM = "hotelhub"


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str,
                 fields: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.fields = status, code, detail, fields

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.fields:
            body["fields"] = self.fields
        headers = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if self.status == 401 else {}
        if self.status == 503:
            headers["Retry-After"] = "2"
        return JSONResponse(body, status_code=self.status, headers=headers)


class ErrorOut(BaseModel):
    error: str
    detail: str
    fields: dict[str, str] | None = None
