"""Reaching the Event Storage: one connection helper and the error every caller shows."""

from __future__ import annotations

import psycopg

from streams.core.exceptions import HubError


class StorageError(HubError):
    """The Event Storage cannot be reached or used: said in one line."""


async def connect(dsn: str) -> psycopg.AsyncConnection:
    """An autocommit connection (each statement its own transaction unless a block opens
    one); an unreachable server is a StorageError naming why, never a traceback."""
    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise StorageError(f"cannot reach the Event Storage: {first_line(exc)}") from exc


def connect_blocking(dsn: str) -> psycopg.Connection:
    """`connect` for code that runs in a thread of its own (the sink's writer)."""
    try:
        return psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise StorageError(f"cannot reach the Event Storage: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
