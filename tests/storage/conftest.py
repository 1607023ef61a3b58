"""The Event Storage's tests share the session's database (tests/conftest.py `database_url`),
migrated once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from streams.storage.schema import migrate


@pytest.fixture(scope="session")
def storage_dsn(database_url: str) -> str:
    migrate(database_url)
    return database_url


@pytest.fixture
async def conn(storage_dsn: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(storage_dsn, autocommit=True) as found:
        yield found
