"""Hub settings, read once from the environment.

Kafka and registry locations use the names their ecosystems use
(`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`); when either is unset the
hub runs its embedded default on loopback. Everything else is `HOTELHUB_*`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BOOTSTRAP = "127.0.0.1:9092"
EMBEDDED_REGISTRY_URL = "http://127.0.0.1:8081"


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTELHUB_", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "HOTELHUB_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="External cluster; unset means the embedded broker on loopback.",
    )
    schema_registry_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SCHEMA_REGISTRY_URL", "HOTELHUB_SCHEMA_REGISTRY_URL"),
        description="External Confluent-compatible registry; unset means the embedded one.",
    )
    home: Path = Field(
        default=Path.home() / ".cache" / "hotelhub",
        description="Jars, broker data, pid files and logs of the embedded services.",
    )
    kafka_version: str = "4.3.1"
    broker_port: int = 9092
    controller_port: int = 9093
    registry_port: int = 8081
    registry_topic: str = "_schemas"

    topic_prefix: str = Field(
        default="",
        description="Prepended to every hub topic, e.g. 'staging.', so environments or test "
        "runs can share one cluster without reading each other's events.",
    )
    topic_partitions: int = 4
    replication_factor: int = 1
    default_hotel_id: str = "HTL-TYO-01"
    default_currency: str = "JPY"
    timezone: str = "Asia/Tokyo"

    pms_customer_fields: list[str] = Field(
        default=["email", "phone"],
        description="Customer fields hotel-pms may change, where allowed (a JSON list).",
    )

    app_id: str = "hotelhub"
    processing_guarantee: str = Field(
        default="at_least_once",
        description="Faust's guarantee for the idempotent agents. Stays (check-in/out) "
        "always commit in Kafka transactions of their own (streams.stay_processor).",
    )
    web_port: int = 6066
    web_bind: str = Field(default="127.0.0.1", description="Interface the worker's HTTP binds.")
    web_host: str = Field(
        default="127.0.0.1",
        description="Host other workers reach this one at, for routing table queries.",
    )
    worker_data_dir: Path | None = None
    publish_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    @property
    def registry_url(self) -> str:
        return self.schema_registry_url or f"http://127.0.0.1:{self.registry_port}"

    def topic(self, base: str) -> str:
        """The topic this deployment uses for a hub topic (`hotel.room` -> `staging.hotel.room`)."""
        return f"{self.topic_prefix}{base}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def uses_embedded_registry(self) -> bool:
        return self.schema_registry_url is None


@lru_cache(maxsize=1)
def get_settings() -> HubSettings:
    """The process-wide settings; tests build their own `HubSettings` instead."""
    return HubSettings()
