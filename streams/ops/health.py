"""What the worker's `/health` asks besides its tables: is processing stuck or dead?

Processing loops register a check here (the hotel processor does, from `agents/`), so
the query layer reports them without importing the agents.
"""

from __future__ import annotations

from collections.abc import Callable

HealthCheck = Callable[[], str | None]
"""Returns why the worker cannot serve the truth right now, or None when it can."""

_checks: list[HealthCheck] = []


def register(check: HealthCheck) -> None:
    _checks.append(check)


def health_problem() -> str | None:
    for check in _checks:
        problem = check()
        if problem is not None:
            return problem
    return None


_fatal_handlers: list[Callable[[BaseException], None]] = []


def on_fatal(handler: Callable[[BaseException], None]) -> None:
    """Run `handler` when a processing loop dies: the worker process exits non-zero on it."""
    _fatal_handlers.append(handler)


def fatal(error: BaseException) -> None:
    for handler in _fatal_handlers:
        handler(error)
