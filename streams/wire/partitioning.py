"""Where the hub puts a hotel: one partition of its own topics per hotel, by murmur2.

Producers may partition as they like (librdkafka's default is CRC32, Java's and
aiokafka's murmur2); the hub re-keys every event to the partition its hotel hashes to
with the Java client's formula, so a hotel's stays, rooms, customers and inventory are
decided in one place whoever produced them.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def hotel_partition(hotel_id: str, partitions: int) -> int:
    """The partition of `hotel_id`, as Kafka's Java default partitioner places that key."""
    return int(murmur2(hotel_id.encode()) & 0x7FFFFFFF) % partitions
