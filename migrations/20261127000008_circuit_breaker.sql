-- The circuit breaker: consecutive failed attempts across a destination open it
-- (`auto_disabled`); after `cooldown_seconds` one held delivery is sent as a probe
-- (`probe_delivery_id`) and its outcome closes the breaker or doubles the cool-down.

ALTER TABLE destinations
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN cooldown_seconds integer NOT NULL DEFAULT 0,
    ADD COLUMN probe_at timestamptz,
    ADD COLUMN probe_delivery_id text;

CREATE INDEX destinations_probe_due ON destinations (probe_at)
    WHERE state = 'auto_disabled' AND probe_delivery_id IS NULL;
