"""`hotelhub_worker_serving` is the worker's `/health` answer, computed at each scrape: it
follows the app's recovery and rebalancing with no timer in between."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.types import AppT
from prometheus_client import REGISTRY

from streams.ops.metrics import worker_serving
from streams.worker.routing import export_serving, not_serving_reason


def _serving() -> float | None:
    return REGISTRY.get_sample_value("hotelhub_worker_serving")


@pytest.fixture
def app() -> Iterator[Any]:
    """An app as `not_serving_reason` sees one: restored, not recovering, not rebalancing."""
    completed = threading.Event()
    completed.set()
    yield SimpleNamespace(tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
                          in_recovery=False, rebalancing=False)
    worker_serving.set_function(lambda: 0.0)  # what a process that is no worker exports


def test_the_gauge_follows_the_health_answer(app: Any) -> None:
    export_serving(cast(AppT, app))
    assert not_serving_reason(app) is None
    assert _serving() == 1.0
    app.rebalancing = True
    assert not_serving_reason(app) is not None
    assert _serving() == 0.0
    app.rebalancing = False
    app.in_recovery = True
    assert _serving() == 0.0
    app.in_recovery = False
    assert _serving() == 1.0
    app.tables.recovery.completed.clear()
    assert _serving() == 0.0
