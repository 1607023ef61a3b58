-- The Event Storage: one row per record the hub's topics carry, for audit and investigation.
-- depends:

CREATE TABLE event_store (
    record_id       uuid        NOT NULL,
    record_type     text        NOT NULL
        CHECK (record_type IN ('event', 'refusal', 'delivery', 'dead_letter',
                               'webhook_dead_letter', 'undecodable')),
    event_id        uuid,
    occurred_at     timestamptz NOT NULL,
    event_type      text        NOT NULL,
    hotel_id        text,
    entity_type     text,
    entity_id       text,
    source_system   text,
    targets         text[]      NOT NULL DEFAULT '{}',
    priority        text,
    correlation_id  text,
    causation_id    text,
    created_offline boolean     NOT NULL DEFAULT false,
    payload         jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}',
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    kafka_timestamp timestamptz,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    -- Also the order of pages (occurred_at, record_id) and of conflicts: a record's time
    -- never changes, so its id with it is as unique as its id alone.
    PRIMARY KEY (occurred_at, record_id)
) PARTITION BY RANGE (occurred_at);

COMMENT ON TABLE event_store IS
    'Every record of the hub''s topics, once (by record_id), partitioned by month of occurred_at';
COMMENT ON COLUMN event_store.record_id IS
    'event_id for events, refusal_id for refusals, else derived from the Kafka coordinates';
COMMENT ON COLUMN event_store.headers IS
    'Kafka headers the columns do not hold already (signatures...; every header of a dead letter)';
COMMENT ON COLUMN event_store.event_id IS
    'The hotel event the row is about (a refusal''s or delivery''s event)';

CREATE INDEX event_store_entity ON event_store (entity_id, entity_type, occurred_at);
CREATE INDEX event_store_correlation ON event_store (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX event_store_causation ON event_store (causation_id)
    WHERE causation_id IS NOT NULL;
CREATE INDEX event_store_event ON event_store (event_id);
