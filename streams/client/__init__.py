"""The client SDK a system embeds (hotel-pms first) to keep working while the hub is out of
reach: `HubClient` publishes through a durable outbox, keeps a local cache, and syncs the
difference when the hub answers again."""

from streams.client.cache import Cached, Conflict, LocalCache
from streams.client.client import ClientStatus, HubClient
from streams.client.ids import new_id, uuid7
from streams.client.outbox import Entry, Outbox, OutboxBusy

__all__ = ["Cached", "ClientStatus", "Conflict", "Entry", "HubClient", "LocalCache", "Outbox",
           "OutboxBusy", "new_id", "uuid7"]
