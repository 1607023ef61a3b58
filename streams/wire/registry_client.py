"""Async client for any Confluent-compatible schema registry (ours, Confluent's, Redpanda's).

Every HTTP failure becomes a `RegistryError` (or `SchemaIncompatible` for 409) in
`_request`, the one place that talks HTTP; callers never see httpx exceptions.
Credentials in the URL (`http://user:secret@host:8081`, as SCHEMA_REGISTRY_URL may
hold them) are sent as HTTP Basic auth and never appear in an error. A URL without them
authenticates as the settings' identity (`HubSettings.credentials()`) when security is on.

Example:
    async with SchemaRegistryClient.from_settings(settings) as registry:
        schema_id = await registry.register("hotel.room-value", schema_text)
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from streams.core.exceptions import RegistryError, SchemaIncompatible
from streams.core.identities import basic_header
from streams.settings import HubSettings, get_settings, redacted_url

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_LEVEL_NOT_SET = 40408


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    id: int
    schema: str


@dataclass(frozen=True)
class CompatibilityResult:
    is_compatible: bool
    messages: list[str] = field(default_factory=list)


def _subject(subject: str) -> str:
    return quote(subject, safe="")


def split_credentials(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """`url` without its userinfo, and that userinfo as HTTP Basic auth (None without one).

    Credentials then travel in a header only, so no URL the client keeps, logs or puts
    into an error carries them.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), httpx.BasicAuth(unquote(user),
                                                                    unquote(password))


class IdentityAuth(httpx.Auth):
    """HTTP Basic as the settings' identity: its secret file is read at the first request
    and again after a 401, so a client that outlives a rotation moves to the new secret."""

    def __init__(self, settings: HubSettings) -> None:
        self._settings = settings
        self._current: tuple[str, str] | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._current is None:
            self._current = self._settings.credentials()
        if self._current is not None:
            request.headers["Authorization"] = basic_header(*self._current)
        response = yield request
        if response.status_code == 401:
            fresh = self._settings.credentials()
            if fresh is not None and fresh != self._current:
                self._current = fresh
                request.headers["Authorization"] = basic_header(*fresh)
                yield request


class SchemaRegistryClient:
    """Client of the registry at `url`.

    Args:
        url: base URL, e.g. `settings.registry_url` (`http://127.0.0.1:8081`); userinfo
            (`http://user:secret@host`) is sent as HTTP Basic auth.
        timeout_s: per-request timeout in seconds (default 10).
        settings: whose identity authenticates when `url` holds no credentials and
            security is on (default: the process's settings, `get_settings()`).
    """

    def __init__(
        self, url: str, *, timeout_s: float = 10.0, settings: HubSettings | None = None
    ) -> None:
        base, url_auth = split_credentials(url.rstrip("/"))
        auth: httpx.Auth | None = url_auth
        if auth is None:
            acting = settings or get_settings()
            auth = IdentityAuth(acting) if acting.secured else None
        self.url = redacted_url(base)
        """Where the registry is, fit for messages: never credentials."""
        self._http = httpx.AsyncClient(
            base_url=base,
            auth=auth,
            timeout=timeout_s,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
        )
        self._schemas_by_id: dict[int, str] = {}

    @classmethod
    def from_settings(
        cls, settings: HubSettings, *, timeout_s: float = 10.0
    ) -> SchemaRegistryClient:
        """The registry of `settings`, authenticated as their identity (or the URL's user)."""
        return cls(settings.registry_url, timeout_s=timeout_s, settings=settings)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = await self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"schema registry at {self.url} is unreachable ({exc.__class__.__name__}: "
                f"{redacted_url(str(exc))}); start the embedded one with `hotelhub registry "
                "up` or set SCHEMA_REGISTRY_URL to a running registry"
            ) from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise RegistryError(
                    f"{method} {self.url}{path} answered non-JSON: {response.text[:200]!r}",
                    status=response.status_code,
                ) from exc
        try:
            error = response.json()
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        error_code = error.get("error_code")
        message = error.get("message") or response.text[:200] or response.reason_phrase
        if response.status_code == 401:
            message = (f"{message} (the registry at {self.url} did not accept this process's "
                       "credentials: check HOTELHUB_IDENTITY and its secret file, or the user "
                       "in SCHEMA_REGISTRY_URL)")
        error_class = SchemaIncompatible if response.status_code == 409 else RegistryError
        raise error_class(
            f"{method} {path}: {message}",
            status=response.status_code,
            error_code=error_code if isinstance(error_code, int) else None,
        )

    async def register(self, subject: str, schema_text: str) -> int:
        """Register an Avro schema under `subject`; the same schema always returns the same id.

        Raises `SchemaIncompatible` when it breaks the subject's compatibility level.
        """
        document = await self._request(
            "POST", f"/subjects/{_subject(subject)}/versions", body={"schema": schema_text}
        )
        schema_id = int(document["id"])
        self._schemas_by_id.setdefault(schema_id, schema_text)
        return schema_id

    async def schema_by_id(self, schema_id: int) -> str:
        """The schema text with this id; cached, since an id never changes its schema."""
        cached = self._schemas_by_id.get(schema_id)
        if cached is None:
            document = await self._request("GET", f"/schemas/ids/{schema_id}")
            cached = self._schemas_by_id[schema_id] = str(document["schema"])
        return cached

    async def lookup(self, subject: str, schema_text: str) -> RegisteredSchema | None:
        """The version of `subject` holding this schema, or None when it is not registered."""
        try:
            document = await self._request(
                "POST", f"/subjects/{_subject(subject)}", body={"schema": schema_text}
            )
        except RegistryError as exc:
            if exc.error_code in (SUBJECT_NOT_FOUND, SCHEMA_NOT_FOUND):
                return None
            raise
        return _registered(document, subject)

    async def latest(self, subject: str) -> RegisteredSchema | None:
        """The newest live version of `subject`, or None when the subject does not exist."""
        try:
            document = await self._request(
                "GET", f"/subjects/{_subject(subject)}/versions/latest"
            )
        except RegistryError as exc:
            if exc.error_code in (SUBJECT_NOT_FOUND, VERSION_NOT_FOUND):
                return None
            raise
        return _registered(document, subject)

    async def versions(self, subject: str) -> list[int]:
        """Live version numbers of `subject`; empty when it does not exist."""
        try:
            document = await self._request("GET", f"/subjects/{_subject(subject)}/versions")
        except RegistryError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return []
            raise
        return [int(v) for v in document]

    async def subjects(self) -> list[str]:
        return [str(s) for s in await self._request("GET", "/subjects")]

    async def check_compatibility(
        self, subject: str, schema_text: str, version: int | str | None = "latest"
    ) -> CompatibilityResult:
        """Would `schema_text` be accepted under `subject`?

        Args:
            version: `"latest"` or a number compares with that one version (Confluent's
                semantics, even for transitive levels); None compares with every version
                the subject's level asks for, which is what registering would do.
        """
        path = f"/compatibility/subjects/{_subject(subject)}/versions"
        if version is not None:
            path += f"/{version}"
        document = await self._request(
            "POST", path, body={"schema": schema_text}, params={"verbose": "true"}
        )
        messages = document.get("messages") or []
        return CompatibilityResult(
            bool(document["is_compatible"]), [str(m) for m in messages]
        )

    async def get_compatibility(self, subject: str | None = None) -> str:
        """The level that applies to `subject` (its own, else the global one), or the global."""
        if subject is not None:
            try:
                document = await self._request(
                    "GET", f"/config/{_subject(subject)}", params={"defaultToGlobal": "true"}
                )
                return str(document["compatibilityLevel"])
            except RegistryError as exc:
                # Registries that ignore defaultToGlobal say "not set" instead.
                if exc.error_code not in (SUBJECT_NOT_FOUND, SUBJECT_LEVEL_NOT_SET):
                    raise
        document = await self._request("GET", "/config")
        return str(document["compatibilityLevel"])

    async def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Set the level of `subject`, or the global one; returns the level now in force."""
        path = "/config" if subject is None else f"/config/{_subject(subject)}"
        document = await self._request("PUT", path, body={"compatibility": level.upper()})
        return str(document.get("compatibility", level.upper()))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SchemaRegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _registered(document: dict[str, Any], subject: str) -> RegisteredSchema:
    return RegisteredSchema(
        subject=str(document.get("subject", subject)),
        version=int(document["version"]),
        id=int(document["id"]),
        schema=str(document["schema"]),
    )


__all__ = ["CompatibilityResult", "IdentityAuth", "RegisteredSchema", "SchemaRegistryClient"]
