"""Errors of the hub. Every error the hub raises derives from `HubError`.

HubError
├── ConfigurationError       settings or environment are unusable
├── BrokerUnavailable        Kafka did not answer in time
├── EmbeddedServiceError     the embedded broker or registry could not start or stop
├── RegistryError            the schema registry refused or failed a request
│   ├── SchemaIncompatible   a schema breaks the subject's compatibility level
│   └── RegistryUnavailable  the registry did not answer: wait and retry, never dead-letter
├── CodecError               bytes are not a valid Confluent-framed Avro record
├── EventValidationError     an event payload is invalid; names every bad field
├── PublishForbidden         this system may not publish this kind of event
├── PublishError             the broker did not acknowledge the event
└── RecordTooLarge           an output record is larger than the broker accepts
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises."""


class ConfigurationError(HubError):
    pass


class BrokerUnavailable(HubError):
    """Check that the broker is up (`hotelhub broker status`) or KAFKA_BOOTSTRAP_SERVERS."""


class EmbeddedServiceError(HubError):
    pass


class RegistryError(HubError):
    def __init__(self, message: str, *, status: int | None = None, error_code: int | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class SchemaIncompatible(RegistryError):
    pass


class RegistryUnavailable(RegistryError):
    """The schema registry is down or failing; records wait for it rather than be dead-lettered."""


class CodecError(HubError):
    pass


class RecordTooLarge(HubError):
    """Raise `HOTELHUB_MAX_RECORD_BYTES` together with the broker's `message.max.bytes`."""


class EventValidationError(HubError):
    """Raised before anything is sent; `errors` maps each field path to what is wrong."""

    def __init__(self, message: str, *, errors: dict[str, str]):
        details = "; ".join(f"{path}: {why}" for path, why in errors.items())
        super().__init__(f"{message}: {details}" if details else message)
        self.errors = errors


class PublishForbidden(HubError):
    pass


class PublishError(HubError):
    pass
