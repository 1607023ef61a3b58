"""Fixtures the platform's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.settings import get_settings


@pytest.fixture
def settings_from_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Each invocation reads the environment afresh; the cache is restored afterwards."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
