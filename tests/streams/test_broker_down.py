"""With no broker, publishing fails fast with a clear error instead of hanging."""

from __future__ import annotations

import asyncio
import socket

import pytest

from streams.core.exceptions import BrokerUnavailable
from streams.core.kinds import System
from streams.runners.publisher import HotelEventPublisher
from streams.settings import HubSettings
from tests.streams.test_codec import SchemasById


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_publisher_start_fails_fast_when_the_broker_is_down() -> None:
    settings = HubSettings(kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}",
                           connect_timeout_s=2)
    publisher = HotelEventPublisher(system=System.HOTEL_PMS, registry=SchemasById(),
                                    settings=settings)
    # The outer bound only keeps a regression from hanging the suite.
    with pytest.raises(BrokerUnavailable, match=r"cannot reach Kafka at 127\.0\.0\.1:"):
        await asyncio.wait_for(publisher.start(), timeout=60)
