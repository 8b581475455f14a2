-- The ids of the telemetry events received in the last 15 days, kept after the events
-- themselves are deleted (a plan's log window may be 3 days): the edge's queues may deliver
-- an event again days after an outage, and it must not count twice. Random ids only.
CREATE TABLE telemetry_receipts (
    id           TEXT PRIMARY KEY,
    received_at  BIGINT NOT NULL
);
CREATE INDEX telemetry_receipts_received ON telemetry_receipts (received_at);
INSERT INTO telemetry_receipts (id, received_at) SELECT id, received_at FROM telemetry_events;
