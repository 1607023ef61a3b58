"""Moved: the benchmarks are `bench.produce`, `bench.consume`, `bench.stay` and `bench.latency`
(`make bench` runs them all), and their shared harness is `bench.common`.

This module only re-exports the harness for scripts that still import it from here.
"""

from __future__ import annotations

from bench.common import (  # noqa: F401  (re-exported)
    AgentSink,
    Deadline,
    Progress,
    Rate,
    Stamp,
    _watchdog,
    check_loopback,
    chunks,
    free_port,
)

if __name__ == "__main__":
    raise SystemExit("bench.throughput was split: run python -m bench.produce, bench.consume, "
                     "bench.stay or bench.latency (or make bench)")
