"""`python -m streams.registry`: the embedded registry in the foreground until SIGTERM/SIGINT.

Settings come from the environment (`streams.settings.HubSettings`); `hotelhub
registry up` runs this detached with a pid file. On Kafka it is `schema-registry`, the
identity the broker's ACLs let own the registry topic, unless HOTELHUB_IDENTITY names
another (a test's registry on a topic of its own).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from streams.core.exceptions import HubError
from streams.registry.server import REGISTRY_IDENTITY, RegistryServer
from streams.settings import HubSettings


async def _serve(settings: HubSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    chosen = "identity" in settings.model_fields_set
    identity = settings.identity if chosen else REGISTRY_IDENTITY
    async with RegistryServer.from_settings(settings, identity=identity):
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
