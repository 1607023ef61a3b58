"""Prometheus metrics of the hub, named with their units as Prometheus users expect."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

events_published_total = Counter(
    "hotelhub_events_published_total", "Events acknowledged by Kafka.", ["kind", "system"]
)
events_consumed_total = Counter(
    "hotelhub_events_consumed_total", "Events decoded and processed by an agent.", ["kind"]
)
events_deadlettered_total = Counter(
    "hotelhub_events_deadlettered_total",
    "Records that could not be decoded and went to the dead-letter topic.",
    ["topic"],
)
event_consume_delay_seconds = Histogram(
    "hotelhub_event_consume_delay_seconds",
    "From the event's occurred_at to its processing by an agent.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
event_apply_delay_seconds = Histogram(
    "hotelhub_event_apply_delay_seconds",
    "From the event's record being produced to its hotel's transaction deciding it.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
refusals_total = Counter(
    "hotelhub_refusals_total", "Events the rules refused, by reason.", ["reason"]
)
consumer_group_lag_records = Gauge(
    "hotelhub_consumer_group_lag_records",
    "Records a consumer group has yet to commit past: the read_committed end offset (last "
    "stable offset) minus the group's committed offset, per partition (streams.ops.lag).",
    ["group", "topic", "partition"],
)

# -- the gateway (streams.gateway) ------------------------------------------------------

gateway_deliveries_total = Counter(
    "hotelhub_gateway_deliveries_total",
    "Events handed to a system by the gateway, by channel (websocket, webhook), system and "
    "outcome (success; webhook: retrying, failed, dead_lettered; websocket: dropped).",
    ["channel", "system", "outcome"],
)
gateway_delivery_latency_seconds = Histogram(
    "hotelhub_gateway_delivery_latency_seconds",
    "From the event's record being produced to the gateway handing it over (websocket: "
    "queued for the socket; webhook: the receiver answered 2xx).",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
             300, 3600),
)
gateway_connections = Gauge(
    "hotelhub_gateway_connections", "Open WebSocket connections, by system.", ["system"]
)
gateway_webhook_retries_total = Counter(
    "hotelhub_gateway_webhook_retries_total",
    "Webhook attempts that failed and were scheduled again.", ["system"]
)
gateway_webhook_dead_letters_total = Counter(
    "hotelhub_gateway_webhook_dead_letters_total",
    "Webhook deliveries written to the webhook dead-letter topic, by reason.",
    ["system", "reason"],
)
gateway_webhook_pending = Gauge(
    "hotelhub_gateway_webhook_pending",
    "Webhook deliveries waiting or in flight in this gateway process, by endpoint.",
    ["endpoint"],
)
gateway_requests_total = Counter(
    "hotelhub_gateway_events_received_total",
    "POST /events by system and outcome (accepted, replayed, invalid, forbidden, failed).",
    ["system", "outcome"],
)

# -- what the alerts watch besides traffic (monitoring/prometheus/alerts.yml) ------------

schema_registry_up = Gauge(
    "hotelhub_schema_registry_up",
    "1 when this process's last probe of the schema registry was answered with its "
    "credentials, else 0 (streams.ops.registry_probe).",
)
schema_registry_probe_duration_seconds = Gauge(
    "hotelhub_schema_registry_probe_duration_seconds",
    "How long the last probe of the schema registry took, answered or not (at most its "
    "timeout).",
)
worker_serving = Gauge(
    "hotelhub_worker_serving",
    "1 when this worker can answer its table queries now (its /health answers 200), else 0; "
    "computed at each scrape. Only a worker sets it: other processes export 0.",
)

# -- the Event Storage sink (streams.storage) -------------------------------------------

storage_records_total = Counter(
    "hotelhub_storage_records_total",
    "Records the Event Storage sink read and wrote (new or already stored), by record type.",
    ["record_type"],
)
storage_batch_seconds = Histogram(
    "hotelhub_storage_batch_seconds",
    "From a polled batch to PostgreSQL having committed it (decode, COPY, insert).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
