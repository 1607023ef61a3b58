"""The non-fact messages of a hotel's partition of `<app>.report-facts`: a tick (send what
is due) and a send request (send one report now). `agents.reports` reads them; the CLI
(`hotelhub report --send`) and the workers' schedules write them."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel

from streams.core.reports.periods import Period


class Tick(BaseModel):
    """Send what is due at `now` (a worker's clock; a test's own) in this partition."""

    fact: Literal["tick"] = "tick"
    now: AwareDatetime


class SendRequest(BaseModel):
    """Send one report now (`hotelhub report --send`): a backfill, or a check."""

    fact: Literal["request"] = "request"
    hotel_id: str
    period: Period
    start: date
