"""The Event Storage's tests share the session's database, migrated once (tests/conftest.py
`storage_dsn`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest


@pytest.fixture
async def conn(storage_dsn: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(storage_dsn, autocommit=True) as found:
        yield found
