"""Hub settings, read once from the environment.

Kafka and registry locations use the names their ecosystems use
(`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`); when either is unset the
hub runs its embedded default on loopback. Everything else is `HOTELHUB_*`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.exceptions import HubError

if TYPE_CHECKING:
    from streams.core.limits import Limits
    from streams.core.rules import RuleSettings

EMBEDDED_BOOTSTRAP = "127.0.0.1:9092"
EMBEDDED_REGISTRY_URL = "http://127.0.0.1:8081"
_USERINFO = re.compile(r"//[^\s,]*@")


def redacted_url(url: str) -> str:
    """`url` fit for logs, errors and output: credentials (`user:secret@`) become `***@`.

    Every place that prints or raises with a registry URL uses this, so a
    SCHEMA_REGISTRY_URL with credentials never shows them.
    """
    # Up to the last '@' of each comma-separated URL: a password may hold '/' or '@'
    # unencoded, and a list of URLs may name several users. Over-redacting is harmless.
    return _USERINFO.sub("//***@", url)


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
        description="External Confluent-compatible registry; unset means the embedded one. "
        "May hold credentials (http://user:secret@host:8081): sent as HTTP Basic auth, "
        "never printed (see `redacted_url`).",
        repr=False,
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
    timezone: str = Field(
        default="Asia/Tokyo",
        description="IANA time zone of the hotels' business days (arrivals, departures, report "
        "days and schedules), unless hotel_timezones names another for a hotel.",
    )
    hotel_timezones: dict[str, str] = Field(
        default={},
        description='Time zone per hotel where it differs from timezone, e.g. '
        '{"HTL-LON-01": "Europe/London"} (a JSON object).',
    )
    max_stay_nights: int = Field(
        default=366, ge=1,
        description="Longest stay a booking may hold; longer ones are refused at the publisher "
        "and by the hub (`streams.core.limits`).",
    )

    pms_customer_fields: list[str] = Field(
        default=["email", "phone"],
        description="Customer fields hotel-pms may change, where allowed (a JSON list).",
    )

    overbooking: dict[str, dict[str, str]] = Field(
        default={},
        description="Rooms each hotel may sell beyond what it has, per room type: a count or a "
        'percent, "*" for any hotel or type, e.g. {"HTL-TYO-01": {"DBL": "2", "*": "5%"}}.',
    )
    order_grace_s: float = Field(
        default=120.0,
        description="How long (hotel event time) a booking or check-in waits for a room type "
        "or room the hub has not seen yet before it is refused; 0 refuses at once.",
    )
    report_tick_s: float = Field(
        default=30.0, ge=0,
        description="How often each worker checks, besides at each report's due time, for "
        "reports due and for corrections of reports already sent (0: only on request, for "
        "tests and backfills).",
    )
    report_catchup_days: int = Field(
        default=35, ge=1,
        description="How far back a worker sends reports that fell due while no worker ran "
        "(35 days covers a missed monthly report).",
    )
    report_retention_days: int = Field(
        default=400, ge=32,
        description="Business days the report tables keep (Faust window expiry, wall clock); "
        "reports of older days can no longer be built.",
    )
    max_record_bytes: int = Field(
        default=1_000_000,
        description="Largest record the hub writes; keep it under the broker's message.max.bytes. "
        "An event whose outputs are larger goes to the dead-letter topic.",
    )

    app_id: str = "hotelhub"
    processing_guarantee: str = Field(
        default="at_least_once",
        description="Faust's guarantee for its agents (the mirror of the state log). "
        "Hotels are always decided in Kafka transactions (streams.runners.hotel_processor).",
    )
    consumer_session_timeout_s: float = Field(
        default=10.0, ge=6, le=300,
        description="Kafka session timeout of the worker's consumer groups (Faust's and the "
        "runners'): how long the broker waits for a member that stopped heartbeating before "
        "its partitions go to others, so how long a worker restarted after a crash waits "
        "before it serves (Faust's default, 60 s, broke the 30 s recovery goal). Heartbeats "
        "come from a background task, not the processing loop: a long round or a wait for "
        "the registry does not miss them (max.poll.interval, 300 s for the runners and "
        "1,000 s for Faust, bounds those). Within the broker's group.min.session.timeout.ms "
        "(6 s) and group.max.session.timeout.ms.",
    )
    consumer_heartbeat_interval_s: float = Field(
        default=3.0, gt=0,
        description="How often the worker's consumers heartbeat; at most a third of "
        "consumer_session_timeout_s, so one late or lost heartbeat does not end a session.",
    )
    web_port: int = 6066
    web_bind: str = Field(default="127.0.0.1", description="Interface the worker's HTTP binds.")
    web_host: str = Field(
        default="127.0.0.1",
        description="Host other workers reach this one at, for routing table queries.",
    )
    worker_data_dir: Path | None = Field(
        default=None,
        description="Where the worker keeps its RocksDB table stores (unset: <home>/worker); "
        "each app id gets a folder of its own. Kept across restarts, so a worker restarts "
        "warm: it reads only the changelog written since it stopped.",
    )
    table_store: str = Field(
        default="rocksdb",
        pattern="^(rocksdb|memory)$",
        description="Store of the query tables: 'rocksdb' (on disk in worker_data_dir, "
        "restarts warm) or 'memory' (restored whole from the changelogs at every start).",
    )
    rocksdb_block_cache_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024 * 1024,
        description="Block cache of each RocksDB store (one per table partition: 4 tables x "
        "partitions), for a small node; Faust's default is 2 GiB each.",
    )
    rocksdb_write_buffer_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024 * 1024,
        description="Memtable size of each RocksDB store (two at most); Faust's is 64 MiB x 3.",
    )
    rocksdb_max_open_files: int = Field(
        default=64, ge=16, description="Open files of each RocksDB store.",
    )
    security: str = Field(
        default="sasl",
        pattern="^(sasl|none)$",
        description="'sasl': every client authenticates (Kafka SASL/SCRAM-SHA-512, HTTP Basic "
        "to the registry and the query API) and the broker enforces ACLs. 'none': plaintext, "
        "no authentication, every client may do anything: for local development only.",
    )
    identity: str = Field(
        default="hotel-hub",
        description="The identity this process acts as (`streams.core.identities`): "
        "the worker is hotel-hub; `hotelhub publish --system` and operator commands pick theirs.",
    )
    credentials_file: Path | None = Field(
        default=None,
        description="File holding 'username:secret' for this process (unset: the identity's "
        "file in secrets_dir). HOTELHUB_USERNAME + HOTELHUB_PASSWORD override both.",
    )
    username: str | None = None
    password: SecretStr | None = Field(default=None, repr=False)
    security_dir: Path | None = Field(
        default=None,
        description="Where the identity store (identities.json) and the secret files "
        "(secrets/<identity>.secret) live; unset: <home>/security.",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="CA bundle of a TLS listener: set it to talk SASL_SSL instead of "
        "SASL_PLAINTEXT (the embedded broker listens in plaintext on loopback only).",
    )
    event_retention_days: int = Field(
        default=7, ge=7,
        description="Days the event and refusal topics keep their records: how far back a "
        "WebSocket client may resume from its cursor (at least 7, as OHIP's streaming keeps).",
    )
    gateway_port: int = Field(default=3400, description="Port of `hotelhub gateway` (the design's "
                              "Event Router).")
    gateway_bind: str = Field(default="127.0.0.1", description="Interface the gateway binds.")
    worker_url: str | None = Field(
        default=None,
        description="The worker's query API the gateway's live board reads rooms and stays "
        "from (any worker: it forwards to the owner); unset: http://127.0.0.1:<web_port>.",
    )
    lag_export_interval_s: float = Field(
        default=5.0, gt=0,
        description="How often the gateway refreshes the consumer lag gauge of the hub's groups "
        "(worker, Event Storage sink, webhooks): it runs while no worker does, so a backlog "
        "behind a stopped worker still shows on /metrics.",
    )
    gateway_client_queue: int = Field(
        default=1000, ge=10,
        description="Events waiting for one WebSocket client; a client further behind is told "
        "(`overflow`, with its cursor) and dropped, so it never slows the others.",
    )
    webhook_retry_schedule_s: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 36000],
        description="Delays before each retry of a webhook after the immediate first attempt "
        "(Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, about 27 h in all), as a JSON list.",
    )
    webhook_retry_jitter: float = Field(
        default=0.2, ge=0, lt=1,
        description="Each retry delay is drawn from +-this fraction of its scheduled value, so "
        "endpoints that failed together are not retried together.",
    )
    webhook_retry_after_max_s: float = Field(
        default=36000, ge=0,
        description="Longest Retry-After (429/503) honoured; a longer one is cut to this.",
    )
    webhook_timeout_s: float = Field(default=15.0, gt=0,
                                     description="Time a webhook receiver has to answer.")
    webhook_lanes: int = Field(
        default=8, ge=1,
        description="Deliveries in flight per endpoint; one entity's events always share a lane, "
        "so they arrive in order.",
    )
    webhook_max_pending: int = Field(
        default=10_000, ge=1,
        description="Deliveries waiting for one endpoint; beyond this an event goes straight to "
        "the webhook dead-letter topic (replayable), so a dead endpoint cannot exhaust memory.",
    )
    webhook_allowed_networks: list[str] = Field(
        default=[],
        description="Networks (CIDR) a webhook URL may point into although they are link-local "
        "or cloud metadata addresses, refused otherwise (a JSON list).",
    )
    publish_timeout_s: float = 10.0
    publish_attempts: int = Field(
        default=3, ge=1,
        description="Sends of one event (same event_id) before a publish gives up on a timeout.",
    )
    connect_timeout_s: float = 5.0

    # -- the client SDK (streams.client): what a system embeds to work offline ---------
    client_dir: Path | None = Field(
        default=None,
        description="Where a client keeps its outbox and local cache (SQLite); unset: "
        "<home>/client/<system>-<client id>.",
    )
    client_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="This installation of a system (one PMS of one hotel); names its "
        "transactional producer and its sync checkpoint. Unset: the host name.",
    )
    client_transport: Literal["kafka", "gateway"] = Field(
        default="kafka",
        description="How a client sends its outbox: straight to Kafka in transactions (the "
        "system's SASL credential) or through the gateway's REST API (its HTTP credential).",
    )
    gateway_url: str | None = Field(
        default=None,
        description="The gateway a client publishes to (client_transport=gateway) and "
        "subscribes through; unset: http://127.0.0.1:<gateway_port>.",
    )
    client_batch: int = Field(
        default=1000, ge=1, le=100_000,
        description="Outbox events sent per Kafka transaction while syncing.",
    )
    client_transaction_timeout_s: float = Field(
        default=15.0, gt=0,
        description="Kafka's transaction.timeout.ms for a client: how long a client killed "
        "mid-sync can hold back read_committed readers before the broker aborts it.",
    )
    client_retry_min_s: float = Field(
        default=0.1, gt=0,
        description="First wait before looking for the hub again after losing it; doubles up "
        "to client_retry_max_s.",
    )
    client_retry_max_s: float = Field(
        default=0.25, gt=0,
        description="Longest wait between looks while the hub is away (a TCP connect; the "
        "client connects only when it answers): bounds how late a recovery is noticed.",
    )

    # -- the Event Storage (streams.storage): every event kept in PostgreSQL for audit ------
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "HOTELHUB_DATABASE_URL"),
        description="The Event Storage's PostgreSQL (postgresql://user:secret@host:5432/db); "
        "unset means the embedded one (`hotelhub storage up`). Never printed.",
        repr=False,
    )
    storage_port: int = Field(
        default=5433,
        description="Port of the embedded PostgreSQL on loopback (5433: beside a system one).",
    )
    storage_retention_months: int = Field(
        default=24, ge=1,
        description="Whole months of events the Event Storage keeps; older monthly partitions "
        "are dropped by the sink (and `hotelhub storage prune`).",
    )
    storage_batch: int = Field(
        default=5000, ge=1, le=100_000,
        description="Records the sink writes to PostgreSQL per transaction at most.",
    )

    @property
    def data_dir(self) -> Path:
        """This app's own folder of table stores (two app ids never share RocksDB files)."""
        base = self.worker_data_dir or self.home / "worker"
        return base / re.sub(r"[^A-Za-z0-9._-]", "_", self.app_id)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value, "timezone")

    @field_validator("consumer_heartbeat_interval_s")
    @classmethod
    def _heartbeats_within_session(cls, value: float, info: ValidationInfo) -> float:
        session = info.data.get("consumer_session_timeout_s")
        if session is not None and value * 3 > session:
            raise ValueError(f"consumer_heartbeat_interval_s ({value:g} s) must be at most a "
                             f"third of consumer_session_timeout_s ({session:g} s)")
        return value

    @field_validator("hotel_timezones")
    @classmethod
    def _known_zones(cls, value: dict[str, str]) -> dict[str, str]:
        return {hotel: _zone(zone, f"hotel_timezones[{hotel}]") for hotel, zone in value.items()}

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    @property
    def registry_url(self) -> str:
        """The registry to call; may hold credentials, so print `registry_url_redacted`."""
        return self.schema_registry_url or f"http://127.0.0.1:{self.registry_port}"

    @property
    def registry_url_redacted(self) -> str:
        return redacted_url(self.registry_url)

    def limits(self) -> Limits:
        """The event limits these settings set (`streams.core.limits`), for publisher and rules."""
        from streams.core.limits import Limits  # settings stay importable without the models

        return Limits(max_stay_nights=self.max_stay_nights)

    def rules(self) -> RuleSettings:
        """What the hotel rules (`streams.core.rules`) need from these settings."""
        from streams.core.rules import RuleSettings

        return RuleSettings(
            timezone=self.timezone, hotel_timezones=self.hotel_timezones,
            pms_customer_fields=frozenset(self.pms_customer_fields),
            overbooking=self.overbooking, limits=self.limits(), order_grace_s=self.order_grace_s,
        )

    @property
    def storage_group(self) -> str:
        """The Event Storage sink's consumer group."""
        return f"{self.app_id}-storage"

    @property
    def storage_home(self) -> Path:
        """The embedded PostgreSQL's data, logs and password (`hotelhub storage up`)."""
        return self.home / "postgres"

    def database_dsn(self) -> str:
        """The Event Storage to connect to: DATABASE_URL, or the embedded server's."""
        if self.database_url:
            return self.database_url
        password = self.storage_home / "password"
        if not password.exists():
            raise HubError(
                f"no Event Storage: DATABASE_URL is unset and the embedded PostgreSQL has no "
                f"password at {password}; start it with `hotelhub storage up`"
            )
        secret = password.read_text().strip()
        return f"postgresql://hotelhub:{secret}@127.0.0.1:{self.storage_port}/hotelhub"

    @property
    def processor_group(self) -> str:
        """The hotel processor's consumer group, and the prefix of its transactional ids."""
        return f"{self.app_id}-hotels"

    def topic(self, base: str) -> str:
        """The topic this deployment uses for a hub topic (`hotel.room` -> `staging.hotel.room`)."""
        return f"{self.topic_prefix}{base}"

    # -- security ------------------------------------------------------------------

    @property
    def secured(self) -> bool:
        return self.security == "sasl"

    @property
    def security_home(self) -> Path:
        return self.security_dir or self.home / "security"

    @property
    def identities_path(self) -> Path:
        return self.security_home / "identities.json"

    @property
    def secrets_dir(self) -> Path:
        return self.security_home / "secrets"

    def as_identity(self, identity: str) -> HubSettings:
        """These settings acting as `identity`, with its own secret file."""
        return self.model_copy(update={"identity": identity, "credentials_file": None,
                                       "username": None, "password": None})

    def acting_as(self, default: str) -> HubSettings:
        """These settings as `default` unless an identity was set explicitly (HOTELHUB_IDENTITY):
        operator commands act as the operator, the worker as hotel-hub."""
        if {"identity", "credentials_file", "username"} & self.model_fields_set:
            return self
        return self.as_identity(default)

    def credentials(self) -> tuple[str, str] | None:
        """(username, secret) this process authenticates with; None when security is off.

        Read when a client is made, so a rotated secret file is picked up by the next client.
        """
        if not self.secured:
            return None
        if self.username and self.password is not None:
            return self.username, self.password.get_secret_value()
        from streams.core.identities import read_user_info, secret_path

        path = self.credentials_file or secret_path(self.secrets_dir, self.identity)
        return read_user_info(path)

    def kafka_auth(self) -> dict[str, Any]:
        """What every aiokafka client of this process is given to connect (SCRAM-SHA-512)."""
        found = self.credentials()
        if found is None:
            return {"security_protocol": "PLAINTEXT"}
        username, secret = found
        options: dict[str, Any] = {
            "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": username, "sasl_plain_password": secret,
        }
        if self.kafka_ssl_cafile is not None:
            import ssl

            options["security_protocol"] = "SASL_SSL"
            options["ssl_context"] = ssl.create_default_context(cafile=str(self.kafka_ssl_cafile))
        return options

    def confluent_auth(self) -> dict[str, str]:
        """The same for librdkafka (confluent-kafka) clients, in its config names."""
        found = self.credentials()
        if found is None:
            return {"security.protocol": "PLAINTEXT"}
        username, secret = found
        options = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                   "sasl.username": username, "sasl.password": secret}
        if self.kafka_ssl_cafile is not None:
            options["security.protocol"] = "SASL_SSL"
            options["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        return options

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


def _zone(name: str, setting: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{setting}: {name!r} is not an IANA time zone (e.g. Asia/Tokyo)"
                         ) from None
    return name
