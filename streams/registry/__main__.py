"""`python -m streams.registry`: the embedded registry in the foreground until SIGTERM/SIGINT.

Settings come from the environment (`streams.settings.HubSettings`); `hotelhub
registry up` runs this detached with a pid file.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from streams.core.exceptions import HubError
from streams.registry.server import RegistryServer
from streams.settings import HubSettings


async def _serve(settings: HubSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with RegistryServer.from_settings(settings):
        await stop.wait()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(HubSettings()))
    except HubError as exc:
        logging.getLogger("streams.registry").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
