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
