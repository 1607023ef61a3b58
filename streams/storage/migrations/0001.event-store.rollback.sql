DROP TABLE event_store;
