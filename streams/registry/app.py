"""The Confluent REST subset that serializers and registry tooling call, on aiohttp.

Errors leave in Confluent's shape, `{"error_code": 40401, "message": "..."}`, from
one middleware; handlers only raise. With an identity store, every request is
authenticated first and only the operator writes (`streams.registry.auth`). Bodies are
read as JSON whatever the request's content type (`application/vnd.schemaregistry.v1+json`
or `application/json`), in the charset it names (UTF-8 when none); what cannot be read
is a 4xx, never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.core.exceptions import RegistryError
from streams.core.identities import WatchedStore
from streams.registry.auth import CHALLENGE, authorising
from streams.registry.compatibility import CompatibilityLevel
from streams.registry.core import SchemaRegistry, parse_version
from streams.registry.exceptions import (
    BadRequest,
    InvalidSchema,
    SchemaNotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from streams.registry.state import SchemaVersion

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
REGISTRY_KEY = web.AppKey("registry", SchemaRegistry)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(document: Any, *, status: int = 200) -> web.Response:
    return web.json_response(document, status=status, content_type=CONTENT_TYPE)


def _raw(text: str) -> web.Response:
    return web.Response(text=text, content_type=CONTENT_TYPE.split(";")[0])


@web.middleware
async def _confluent_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as exc:
        response = _reply({"error_code": exc.error_code, "message": str(exc)},
                          status=exc.status or 500)
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = CHALLENGE
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _reply({"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"},
                      status=exc.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _reply({"error_code": 500, "message": "Internal Server Error"}, status=500)


def _registry(request: web.Request) -> SchemaRegistry:
    return request.app[REGISTRY_KEY]


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object of the body: a bad charset, bad bytes or bad JSON is a 4xx, never 500."""
    raw = await request.read()
    charset = request.charset or "utf-8"
    try:
        text = raw.decode(charset)
    except LookupError:
        raise UnsupportedMediaType(
            f"Unsupported charset {charset[:40]!r} in Content-Type; send UTF-8 JSON"
        ) from None
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"Unrecognized request body: not valid {charset} at byte {exc.start} ({exc.reason})"
        ) from None
    try:
        document = json.loads(text) if text.strip() else {}
    except RecursionError:
        raise BadRequest("Unrecognized request body: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"Unrecognized request body: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest("The request body must be a JSON object")
    return document


async def _schema_from_body(request: web.Request) -> str:
    body = await _body(request)
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type != "AVRO":
        raise InvalidSchema(f"Invalid schema type {schema_type}; this registry serves AVRO only")
    if body.get("references"):
        raise InvalidSchema("Schema references are not supported by this registry")
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise InvalidSchema("Empty schema")
    return schema


def _version_document(found: SchemaVersion) -> dict[str, Any]:
    return {
        "subject": found.subject,
        "version": found.version,
        "id": found.id,
        "schema": found.schema.text,
    }


def _schema_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise SchemaNotFound(f"Schema {request.match_info['id']} not found") from None


# -- root and schemas ------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    return _reply({})


async def schema_types(request: web.Request) -> web.Response:
    return _reply(["AVRO"])


async def schema_by_id(request: web.Request) -> web.Response:
    return _reply({"schema": _registry(request).schema_by_id(_schema_id(request)).text})


async def raw_schema_by_id(request: web.Request) -> web.Response:
    return _raw(_registry(request).schema_by_id(_schema_id(request)).text)


async def versions_by_id(request: web.Request) -> web.Response:
    registry, schema_id = _registry(request), _schema_id(request)
    registry.schema_by_id(schema_id)
    usages = registry.state.usages(schema_id, deleted=_flag(request, "deleted"))
    return _reply([{"subject": v.subject, "version": v.version} for v in usages])


async def subjects_by_id(request: web.Request) -> web.Response:
    registry, schema_id = _registry(request), _schema_id(request)
    registry.schema_by_id(schema_id)
    usages = registry.state.usages(schema_id, deleted=_flag(request, "deleted"))
    return _reply(sorted({v.subject for v in usages}))


# -- subjects ---------------------------------------------------------------------------


async def list_subjects(request: web.Request) -> web.Response:
    return _reply(_registry(request).state.subject_names(deleted=_flag(request, "deleted")))


async def list_versions(request: web.Request) -> web.Response:
    found = _registry(request).live_versions(
        request.match_info["subject"], deleted=_flag(request, "deleted")
    )
    return _reply([v.version for v in found])


async def get_version(request: web.Request) -> web.Response:
    found = _registry(request).get_version(
        request.match_info["subject"], request.match_info["version"],
        deleted=_flag(request, "deleted"),
    )
    return _reply(_version_document(found))


async def get_version_schema(request: web.Request) -> web.Response:
    found = _registry(request).get_version(
        request.match_info["subject"], request.match_info["version"],
        deleted=_flag(request, "deleted"),
    )
    return _raw(found.schema.text)


async def register(request: web.Request) -> web.Response:
    schema = await _schema_from_body(request)
    created = await _registry(request).register(request.match_info["subject"], schema)
    return _reply({"id": created.id})


async def lookup(request: web.Request) -> web.Response:
    schema = await _schema_from_body(request)
    found = _registry(request).lookup(
        request.match_info["subject"], schema, deleted=_flag(request, "deleted")
    )
    return _reply(_version_document(found))


async def delete_subject(request: web.Request) -> web.Response:
    deleted = await _registry(request).delete_subject(
        request.match_info["subject"], permanent=_flag(request, "permanent")
    )
    return _reply(deleted)


async def delete_version(request: web.Request) -> web.Response:
    deleted = await _registry(request).delete_version(
        request.match_info["subject"], request.match_info["version"],
        permanent=_flag(request, "permanent"),
    )
    return _reply(deleted)


# -- config -----------------------------------------------------------------------------


async def _level_from_body(request: web.Request) -> CompatibilityLevel:
    body = await _body(request)
    return CompatibilityLevel.parse(body.get("compatibility", body.get("compatibilityLevel")))


async def get_global_config(request: web.Request) -> web.Response:
    return _reply({"compatibilityLevel": _registry(request).level().value})


async def put_global_config(request: web.Request) -> web.Response:
    level = await _level_from_body(request)
    await _registry(request).set_level(level)
    return _reply({"compatibility": level.value})


async def delete_global_config(request: web.Request) -> web.Response:
    old = await _registry(request).delete_level()
    return _reply({"compatibilityLevel": old.value})


async def get_subject_config(request: web.Request) -> web.Response:
    level = _registry(request).subject_level(
        request.match_info["subject"], default_to_global=_flag(request, "defaultToGlobal")
    )
    return _reply({"compatibilityLevel": level.value})


async def put_subject_config(request: web.Request) -> web.Response:
    level = await _level_from_body(request)
    await _registry(request).set_level(level, request.match_info["subject"])
    return _reply({"compatibility": level.value})


async def delete_subject_config(request: web.Request) -> web.Response:
    old = await _registry(request).delete_level(request.match_info["subject"])
    return _reply({"compatibilityLevel": old.value})


# -- compatibility ----------------------------------------------------------------------


async def check_compatibility(request: web.Request) -> web.Response:
    version = request.match_info.get("version")
    if version is not None:
        parse_version(version)  # a bad version is 42202 whatever the body holds
    schema = await _schema_from_body(request)
    problems = _registry(request).check(request.match_info["subject"], schema, version)
    document: dict[str, Any] = {"is_compatible": not problems}
    if _flag(request, "verbose"):
        document["messages"] = problems
    return _reply(document)


def create_app(
    registry: SchemaRegistry, *, identities: WatchedStore | None = None
) -> web.Application:
    """The aiohttp application serving `registry`; the caller owns its lifecycle.

    `identities` turns authentication on (HTTP Basic, operator-only writes); None serves
    everyone, as `HOTELHUB_SECURITY=none` asks.
    """
    middlewares: list[Middleware] = [_confluent_errors]
    if identities is not None:
        middlewares.append(authorising(identities))
    app = web.Application(middlewares=middlewares)
    app[REGISTRY_KEY] = registry
    app.router.add_get("/", root)
    app.router.add_get("/schemas/types", schema_types)
    app.router.add_get("/schemas/ids/{id}", schema_by_id)
    app.router.add_get("/schemas/ids/{id}/schema", raw_schema_by_id)
    app.router.add_get("/schemas/ids/{id}/versions", versions_by_id)
    app.router.add_get("/schemas/ids/{id}/subjects", subjects_by_id)
    app.router.add_get("/subjects", list_subjects)
    app.router.add_post("/subjects/{subject}", lookup)
    app.router.add_delete("/subjects/{subject}", delete_subject)
    app.router.add_get("/subjects/{subject}/versions", list_versions)
    app.router.add_post("/subjects/{subject}/versions", register)
    app.router.add_get("/subjects/{subject}/versions/{version}", get_version)
    app.router.add_delete("/subjects/{subject}/versions/{version}", delete_version)
    app.router.add_get("/subjects/{subject}/versions/{version}/schema", get_version_schema)
    app.router.add_get("/config", get_global_config)
    app.router.add_put("/config", put_global_config)
    app.router.add_delete("/config", delete_global_config)
    app.router.add_get("/config/{subject}", get_subject_config)
    app.router.add_put("/config/{subject}", put_subject_config)
    app.router.add_delete("/config/{subject}", delete_subject_config)
    app.router.add_post("/compatibility/subjects/{subject}/versions", check_compatibility)
    app.router.add_post(
        "/compatibility/subjects/{subject}/versions/{version}", check_compatibility
    )
    return app
