"""Errors of the embedded registry, each carrying Confluent's HTTP status and error code.

The server turns any of these into `{"error_code": ..., "message": ...}` in one place,
so the codes here are the whole error vocabulary of the REST API.
"""

from __future__ import annotations

from streams.core.exceptions import RegistryError, SchemaIncompatible


class SubjectNotFound(RegistryError):
    def __init__(self, subject: str):
        super().__init__(f"Subject '{subject}' not found.", status=404, error_code=40401)


class VersionNotFound(RegistryError):
    def __init__(self, version: int | str):
        super().__init__(f"Version {version} not found.", status=404, error_code=40402)


class SchemaNotFound(RegistryError):
    def __init__(self, message: str = "Schema not found"):
        super().__init__(message, status=404, error_code=40403)


class SubjectSoftDeleted(RegistryError):
    def __init__(self, subject: str):
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently",
            status=404,
            error_code=40404,
        )


class SubjectNotSoftDeleted(RegistryError):
    def __init__(self, subject: str):
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted",
            status=404,
            error_code=40405,
        )


class VersionSoftDeleted(RegistryError):
    def __init__(self, subject: str, version: int):
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently",
            status=404,
            error_code=40406,
        )


class VersionNotSoftDeleted(RegistryError):
    def __init__(self, subject: str, version: int):
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first "
            "before being permanently deleted",
            status=404,
            error_code=40407,
        )


class SubjectLevelConfigNotFound(RegistryError):
    def __init__(self, subject: str):
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured",
            status=404,
            error_code=40408,
        )


class IncompatibleSchema(SchemaIncompatible):
    def __init__(self, subject: str, messages: list[str]):
        super().__init__(
            "Schema being registered is incompatible with an earlier schema for subject "
            f"\"{subject}\", details: [{'; '.join(messages)}]",
            status=409,
            error_code=409,
        )
        self.messages = messages


class InvalidSchema(RegistryError):
    def __init__(self, message: str):
        super().__init__(message, status=422, error_code=42201)


class InvalidVersion(RegistryError):
    def __init__(self, version: str):
        super().__init__(
            f"The specified version '{version}' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"',
            status=422,
            error_code=42202,
        )


class InvalidCompatibilityLevel(RegistryError):
    def __init__(self) -> None:
        super().__init__(
            "Invalid compatibility level. Valid values are none, backward, forward, full, "
            "backward_transitive, forward_transitive, and full_transitive",
            status=422,
            error_code=42203,
        )


class StoreError(RegistryError):
    """The `_schemas` topic refused a write; check the broker (`hotelhub broker status`)."""

    def __init__(self, message: str):
        super().__init__(message, status=500, error_code=50001)


class BadRequest(RegistryError):
    def __init__(self, message: str):
        super().__init__(message, status=400, error_code=400)


class UnsupportedMediaType(RegistryError):
    """A body in a charset Python cannot decode text with (as Jersey answers: 415)."""

    def __init__(self, message: str):
        super().__init__(message, status=415, error_code=415)


class Unauthorized(RegistryError):
    """No credentials, or ones the identity store does not accept (Confluent's 40101)."""

    def __init__(self, message: str = "Unauthorized: send valid HTTP Basic credentials") -> None:
        super().__init__(message, status=401, error_code=40101)


class Forbidden(RegistryError):
    """Authenticated, but the identity's role may not do this (Confluent's 40301)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=403, error_code=40301)
