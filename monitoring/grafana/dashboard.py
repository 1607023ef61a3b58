"""Writes hotelhub-dashboard.json, the hub's Grafana dashboard, from the panels below.

    python monitoring/grafana/dashboard.py      # rewrites the JSON next to this file

Generated so that panel ids and positions cannot clash and every query is a plain string a
test can check (tests/ops/test_monitoring.py: valid PromQL, only metrics the hub exports,
and the committed JSON equal to what this writes). The figures are those of the alerts in
monitoring/prometheus/alerts.yml, plus the traffic that explains them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "hotelhub-dashboard.json"
UID = "hotelhub-overview"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
WORKER = 'job="hotelhub-worker"'
LAG = 'max by (group, topic, partition) (hotelhub_consumer_group_lag_records{group=~"$group"})'
ENDED = 'outcome=~"success|failed|dead_lettered|dropped"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    description: str = ""
    thresholds: tuple[tuple[float, str], ...] = ()
    """(from value, colour) steps after the base green, e.g. ((0.999, "red"),)."""
    reverse: bool = False
    """Thresholds read "below is bad": the base colour is red, steps turn it green."""
    options: dict[str, Any] = field(default_factory=dict)


def _q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


PANELS: tuple[Panel, ...] = (
    # -- the design's four goals, at a glance ---------------------------------------------
    Panel("Delivery success (goal >= 99.9 %)", (
        _q(f'sum(rate(hotelhub_gateway_deliveries_total{{outcome="success",system=~"$system"}}'
           f'[$__rate_interval])) / sum(rate(hotelhub_gateway_deliveries_total'
           f'{{{ENDED},system=~"$system"}}[$__rate_interval]))'),),
       unit="percentunit", kind="stat", width=6, height=5, reverse=True,
       thresholds=((0.999, "green"),),
       description="Gateway deliveries that succeeded over those that ended (retrying is "
                   "no end). Alert: HotelHubDeliverySuccessBelow999."),
    Panel("Websocket p99 (goal < 100 ms)", (
        _q('histogram_quantile(0.99, sum by (le) (rate(hotelhub_gateway_delivery_latency_'
           'seconds_bucket{channel="websocket"}[$__rate_interval])))'),),
       unit="s", kind="stat", width=6, height=5, thresholds=((0.1, "red"),),
       description="Record produced -> queued for the socket. Alert: "
                   "HotelHubRealtimeLatencyOver100ms."),
    Panel("Largest backlog (goal < 1,000)", (
        _q(f"max(sum by (group) ({LAG}))"),),
       kind="stat", width=6, height=5, thresholds=((1000, "red"),),
       description="Records waiting for the busiest consumer group. Alert: "
                   "HotelHubBacklogOver1000."),
    Panel("Workers serving", (
        _q(f"sum(hotelhub_worker_serving{{{WORKER}}}) or vector(0)", "serving"),
        _q(f"count(up{{{WORKER}}}) or vector(0)", "scraped")),
       kind="stat", width=6, height=5,
       description="Workers whose GET /health answers 200, of those scraped. Alerts: "
                   "HotelHubWorkerNotServing, HotelHubRecoveryOver30s."),
    # -- delivery -------------------------------------------------------------------------
    Panel("Delivery success ratio by channel", (
        _q(f'sum by (channel) (rate(hotelhub_gateway_deliveries_total{{outcome="success",'
           f'system=~"$system"}}[$__rate_interval])) / sum by (channel) (rate('
           f'hotelhub_gateway_deliveries_total{{{ENDED},system=~"$system"}}'
           f'[$__rate_interval]))', "{{channel}}"),),
       unit="percentunit", thresholds=((0.999, "green"),), reverse=True),
    Panel("Deliveries by outcome", (
        _q('sum by (channel, outcome) (rate(hotelhub_gateway_deliveries_total'
           '{system=~"$system"}[$__rate_interval]))', "{{channel}} {{outcome}}"),),
       unit="ops"),
    Panel("Realtime latency: websocket delivery and apply delay", (
        _q('histogram_quantile(0.5, sum by (le) (rate(hotelhub_gateway_delivery_latency_'
           'seconds_bucket{channel="websocket"}[$__rate_interval])))', "websocket p50"),
        _q('histogram_quantile(0.99, sum by (le) (rate(hotelhub_gateway_delivery_latency_'
           'seconds_bucket{channel="websocket"}[$__rate_interval])))', "websocket p99"),
        _q('histogram_quantile(0.5, sum by (le) (rate(hotelhub_event_apply_delay_seconds_'
           'bucket[$__rate_interval])))', "apply p50"),
        _q('histogram_quantile(0.99, sum by (le) (rate(hotelhub_event_apply_delay_seconds_'
           'bucket[$__rate_interval])))', "apply p99")),
       unit="s", thresholds=((0.1, "red"),),
       description="Websocket: record produced -> queued for the socket (the alert's). "
                   "Apply: record produced -> the hotel processor's transaction."),
    Panel("Webhook delivery latency", (
        _q('histogram_quantile(0.5, sum by (le) (rate(hotelhub_gateway_delivery_latency_'
           'seconds_bucket{channel="webhook"}[$__rate_interval])))', "p50"),
        _q('histogram_quantile(0.99, sum by (le) (rate(hotelhub_gateway_delivery_latency_'
           'seconds_bucket{channel="webhook"}[$__rate_interval])))', "p99")),
       unit="s"),
    # -- backlog --------------------------------------------------------------------------
    Panel("Backlog per consumer group", (
        _q(f"sum by (group) ({LAG})", "{{group}}"),),
       thresholds=((1000, "red"),),
       description="Records not yet committed past (read_committed end minus committed "
                   "offset), each partition counted once whichever processes export it."),
    Panel("Backlog per partition", (
        _q(LAG, "{{group}} {{topic}}[{{partition}}]"),)),
    # -- health ---------------------------------------------------------------------------
    Panel("Worker serving", (
        _q(f"hotelhub_worker_serving{{{WORKER}}}", "{{instance}}"),
        _q(f"up{{{WORKER}}}", "{{instance}} scraped")),
       description="1: GET /health answers 200. 0: restoring, rebalancing or stuck."),
    Panel("Schema registry", (
        _q('hotelhub_schema_registry_up{job=~"hotelhub-worker|hotelhub-gateway"}',
           "{{job}} {{instance}} up"),
        _q('hotelhub_schema_registry_probe_duration_seconds{job=~"hotelhub-worker|'
           'hotelhub-gateway"}', "{{job}} {{instance}} probe (s)")),
       description="Each process's last probe of the registry with its own credentials. "
                   "Alert: HotelHubSchemaRegistryUnreachable."),
    # -- what went wrong ------------------------------------------------------------------
    Panel("Dead letters (per 10 minutes)", (
        _q("sum by (topic) (increase(hotelhub_events_deadlettered_total[10m]))",
           "undecodable {{topic}}"),
        _q('sum by (system, reason) (increase(hotelhub_gateway_webhook_dead_letters_total'
           '{system=~"$system"}[10m]))', "webhook {{system}} {{reason}}")),
       description="Alert: HotelHubDeadLettersAppearing. `hotelhub deadletter list`."),
    Panel("Refusals by reason", (
        _q("sum by (reason) (rate(hotelhub_refusals_total[$__rate_interval]))",
           "{{reason}}"),),
       unit="ops"),
    Panel("Refusals over events consumed", (
        _q("sum(rate(hotelhub_refusals_total[$__rate_interval])) / "
           "sum(rate(hotelhub_events_consumed_total[$__rate_interval]))", "refused"),),
       unit="percentunit", thresholds=((0.05, "red"),),
       description="Alert: HotelHubRefusalRateHigh (above 5 %)."),
    # -- traffic --------------------------------------------------------------------------
    Panel("Events published and consumed", (
        _q('sum by (kind) (rate(hotelhub_events_published_total{system=~"$system"}'
           '[$__rate_interval]))', "published {{kind}}"),
        _q("sum by (kind) (rate(hotelhub_events_consumed_total[$__rate_interval]))",
           "consumed {{kind}}")),
       unit="ops"),
    Panel("POST /events by outcome", (
        _q('sum by (outcome) (rate(hotelhub_gateway_events_received_total'
           '{system=~"$system"}[$__rate_interval]))', "{{outcome}}"),),
       unit="reqps"),
    Panel("Webhooks pending and retried", (
        _q("sum by (endpoint) (hotelhub_gateway_webhook_pending)", "pending {{endpoint}}"),
        _q('sum by (system) (rate(hotelhub_gateway_webhook_retries_total{system=~"$system"}'
           '[$__rate_interval]))', "retries/s {{system}}"))),
    Panel("WebSocket connections", (
        _q('sum by (system) (hotelhub_gateway_connections{system=~"$system"})', "{{system}}"),
    )),
)


def _thresholds(panel: Panel) -> dict[str, Any]:
    base = "red" if panel.reverse else "green"
    steps: list[dict[str, Any]] = [{"color": base, "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    return {"mode": "absolute", "steps": steps}


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    refs = "ABCDEFGH"
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "thresholds": _thresholds(panel)},
                        "overrides": []},
        "options": panel.options or (
            {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
             "colorMode": "value", "graphMode": "area", "textMode": "auto"}
            if panel.kind == "stat" else
            {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
             "tooltip": {"mode": "multi", "sort": "none"}}),
        "targets": [{"refId": refs[index], "datasource": DATASOURCE, "expr": query.expr,
                     "legendFormat": query.legend or "__auto", "range": True}
                    for index, query in enumerate(panel.queries)],
    }
    if panel.kind == "timeseries" and panel.thresholds:
        body["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return body


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [], "hide": 0,
    }


def build() -> dict[str, Any]:
    """The dashboard: panels laid out left to right, a new row when one is full."""
    panels: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(PANELS, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": UID,
        "title": "Hotel event hub",
        "description": "The design's goals (delivery >= 99.9 %, realtime < 100 ms, backlog "
                       "< 1,000, recovery < 30 s) and the traffic behind them. Generated by "
                       "monitoring/grafana/dashboard.py.",
        "tags": ["hotelhub"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0, "options": [], "refresh": 1,
             "regex": ""},
            _variable("group", "Consumer group",
                      "label_values(hotelhub_consumer_group_lag_records, group)"),
            _variable("system", "System",
                      "label_values(hotelhub_gateway_deliveries_total, system)"),
        ]},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT.name}")
