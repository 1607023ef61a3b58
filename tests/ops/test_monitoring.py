"""The monitoring files are right before anyone deploys them: the alert rules pass promtool's
checks and their unit tests, each alert carries what the on-call engineer needs and is
tested firing and quiet, the Grafana dashboard is well formed and equal to what its
generator writes, and no rule or panel asks for a metric the hub does not export (a typo
in a metric name is otherwise an alert that can never fire)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import streams.ops.metrics  # noqa: F401  (registers the hub's metrics in REGISTRY)

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "monitoring" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
SCRAPE_CONFIG = PROMETHEUS / "prometheus.yml"
GRAFANA = REPO / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "hotelhub-dashboard.json"
SEVERITIES = {"critical", "warning"}
PROMETHEUS_OWN = {"up"}
"""Series Prometheus writes itself for every target."""
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$group": ".*", "$system": ".*"}
"""What Grafana puts in place of its variables, so promtool can read the expressions."""
DEBIAN_PROMTOOL = Path("/usr/bin/promtool")

# -- promtool ------------------------------------------------------------------------------


def promtool(*args: str | Path, cwd: Path = PROMETHEUS) -> str:
    """promtool's output; a failure is an AssertionError holding that output."""
    found = shutil.which("promtool") or (str(DEBIAN_PROMTOOL) if DEBIAN_PROMTOOL.is_file()
                                         else None)
    if found is None:
        raise AssertionError("promtool is not installed: install the Debian package "
                             "`prometheus` (it ships promtool)")
    done = subprocess.run([found, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise AssertionError(f"promtool {' '.join(map(str, args))} failed "
                             f"(exit {done.returncode}):\n{output}")
    return output


# -- PromQL metric names -------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "offset", "bool", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and
    label values left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def exported_names() -> set[str]:
    """Every series name the hub's processes can expose, as Prometheus stores it."""
    names = set(PROMETHEUS_OWN)
    for family in REGISTRY.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count",
                                                               "_created")}
        elif family.type == "summary":
            names |= {family.name, *(f"{family.name}{s}" for s in ("_sum", "_count",
                                                                    "_created"))}
        else:
            names.add(family.name)
        names |= {sample.name for sample in family.samples}
    return names


def unknown_metrics(exprs: Iterable[tuple[str, str]]) -> list[str]:
    """'where: name' for each metric an expression uses that the hub does not export."""
    known = exported_names()
    return [f"{where}: {name}" for where, expr in exprs
            for name in sorted(metric_names(expr) - known)]


# -- the files -----------------------------------------------------------------------------


def rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for rule in rules():
        name = rule.get("alert")
        if name is not None:
            assert name not in found, f"{ALERTS.name}: alert {name} defined twice"
            found[name] = rule
    return found


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL with Grafana's variables filled in) for every panel target."""
    found = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"panel {panel['id']}: unknown variable in {expr!r}"
            found.append((f"panel {panel['id']} ({panel['title']}) {target['refId']}", expr))
    return found


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hotelhub_dashboard", GRAFANA / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# -- the alert rules -----------------------------------------------------------------------

FIXED_NAMES = {
    "HotelHubDeliverySuccessBelow999", "HotelHubRealtimeLatencyOver100ms",
    "HotelHubBacklogOver1000", "HotelHubRecoveryOver30s", "HotelHubWorkerNotServing",
    "HotelHubConsumerLagGrowing", "HotelHubDeadLettersAppearing", "HotelHubRefusalRateHigh",
    "HotelHubSchemaRegistryUnreachable",
}
"""Other code and runbooks refer to these names."""


def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    assert "SUCCESS" in promtool("check", "rules", ALERTS)
    assert "SUCCESS" in promtool("check", "config", "--syntax-only", SCRAPE_CONFIG)


def test_the_alerts_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS)


def test_the_alerts_are_the_named_ones() -> None:
    assert set(alerts()) == FIXED_NAMES


def test_every_alert_says_how_bad_what_and_what_to_do() -> None:
    wrong = []
    for name, rule in alerts().items():
        severity = (rule.get("labels") or {}).get("severity")
        if severity not in SEVERITIES:
            wrong.append(f"{name}: severity {severity!r}, want one of {sorted(SEVERITIES)}")
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description", "runbook"):
            if not str(annotations.get(key, "")).strip():
                wrong.append(f"{name}: no {key} annotation")
        if "\n" in str(annotations.get("runbook", "")).strip():
            wrong.append(f"{name}: the runbook is one line")
    assert not wrong, "\n".join(wrong)


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    document = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    for case in document["tests"]:
        for check in case.get("alert_rule_test") or []:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = set(alerts())
    assert not names - fires, f"never tested firing: {sorted(names - fires)}"
    assert not names - quiet, f"never tested quiet: {sorted(names - quiet)}"
    assert not (fires | quiet) - names, f"tests of no alert: {sorted((fires | quiet) - names)}"


def test_the_backlog_alert_is_a_plain_expression_with_its_threshold() -> None:
    expr = alerts()["HotelHubBacklogOver1000"]["expr"]
    assert isinstance(expr, str) and expr.strip().endswith(">= 1000"), expr
    assert metric_names(expr) == {"hotelhub_consumer_group_lag_records"}


def test_the_rules_use_only_exported_metrics() -> None:
    exprs = [(f"{ALERTS.name} {rule.get('alert') or rule.get('record')}", rule["expr"])
             for rule in rules()]
    assert not unknown_metrics(exprs), unknown_metrics(exprs)
    used = set().union(*(metric_names(expr) for _, expr in exprs))
    # The two gauges added for these alerts, and the lag the backlog is made of.
    assert {"hotelhub_schema_registry_up", "hotelhub_worker_serving",
            "hotelhub_consumer_group_lag_records", "up"} <= used


def test_a_misspelled_metric_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [{
        "alert": "Typo", "labels": {"severity": "warning"},
        "expr": 'sum by (channel) (rate(hotelhub_gateway_delivery_total{outcome="success"}'
                '[5m])) / sum by (channel) (rate(hotelhub_gateway_deliveries_total[5m])) '
                '< 0.999 and on () up{job="hotelhub-gateway"} == 1'}]}]}), encoding="utf-8")
    promtool("check", "rules", bad)  # valid PromQL: only the name is wrong
    found = unknown_metrics((f"{bad.name} {rule['alert']}", rule["expr"])
                            for rule in rules(bad))
    assert found == ["bad.yml Typo: hotelhub_gateway_delivery_total"]


def test_metric_names_leave_out_functions_labels_and_keywords() -> None:
    expr = ('sum by (group) (max by (group, topic, partition) (a_lag offset 5m)) >= 1000 and '
            'on (group) histogram_quantile(0.99, rate(b_bucket{le="+Inf", x=~"y|z"}[5m:30s])) '
            'or vector(0) unless c_total')
    assert metric_names(expr) == {"a_lag", "b_bucket", "c_total"}


def test_a_broken_rule_file_fails_with_promtools_words(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [{
        "alert": "Broken", "expr": "sum by (group (up)"}]}]}), encoding="utf-8")
    with pytest.raises(AssertionError, match=r"(?s)promtool check rules .*broken\.yml.*parse"):
        promtool("check", "rules", bad)


def test_a_missing_promtool_names_its_package(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(sys.modules[__name__], "DEBIAN_PROMTOOL", tmp_path / "promtool")
    with pytest.raises(AssertionError, match="Debian package `prometheus`"):
        promtool("check", "rules", ALERTS)


# -- the dashboard -------------------------------------------------------------------------


def test_the_dashboard_is_what_its_generator_writes() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == generator().render(), (
        f"{DASHBOARD.name} differs from its generator: run "
        "`python monitoring/grafana/dashboard.py` and commit the result")


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    all_panels = panels(board)
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    cells: set[tuple[int, int]] = set()
    for panel in all_panels:
        where = f"panel {panel.get('id')} ({panel.get('title')})"
        grid = panel.get("gridPos")
        assert grid and {"h", "w", "x", "y"} <= set(grid), f"{where}: no gridPos"
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{where}: wider than 24"
        own = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
               for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not own & cells, f"{where} overlaps another panel"
        cells |= own
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", where
            assert panel["targets"], f"{where}: no query"
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), f"{where}: refIds repeat"
        for target in panel.get("targets", []):
            for name in re.findall(r"\$\{?(\w+)", target["expr"]):
                assert name.startswith("__") or name in variables, (
                    f"{where}: ${name} is no variable of the dashboard")


def test_the_grafana_provisioning_files_parse() -> None:
    provisioning = GRAFANA / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text(
        encoding="utf-8"))["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    [provider] = yaml.safe_load((provisioning / "dashboards" / "hotelhub.yml").read_text(
        encoding="utf-8"))["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs(dashboard())
    as_rules = tmp_path / "dashboard-rules.yml"
    as_rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": expr}
        for index, (_, expr) in enumerate(exprs)]}]}), encoding="utf-8")
    assert f"SUCCESS: {len(exprs)} rules found" in promtool("check", "rules", as_rules)


def test_the_dashboard_uses_only_exported_metrics() -> None:
    exprs = dashboard_exprs(dashboard())
    assert not unknown_metrics(exprs), unknown_metrics(exprs)
    used = set().union(*(metric_names(expr) for _, expr in exprs))
    figures = {
        "hotelhub_gateway_deliveries_total", "hotelhub_gateway_delivery_latency_seconds_bucket",
        "hotelhub_event_apply_delay_seconds_bucket", "hotelhub_consumer_group_lag_records",
        "hotelhub_worker_serving", "hotelhub_schema_registry_up",
        "hotelhub_events_deadlettered_total", "hotelhub_gateway_webhook_dead_letters_total",
        "hotelhub_refusals_total", "hotelhub_events_published_total",
        "hotelhub_events_consumed_total", "hotelhub_gateway_webhook_pending",
        "hotelhub_gateway_webhook_retries_total", "hotelhub_gateway_connections",
    }
    assert not figures - used, f"not on the dashboard: {sorted(figures - used)}"
