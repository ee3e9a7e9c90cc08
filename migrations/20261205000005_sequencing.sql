-- Per-key ordering and coalescing, route options. Ingest stores on each delivery the key
-- its route orders or coalesces by and its event's time (the provider's `created_at`,
-- else when it was received), so the claim never parses a body.
ALTER TABLE routes
    ADD COLUMN ordering jsonb,
    ADD COLUMN coalescing jsonb;

ALTER TABLE deliveries
    ADD COLUMN order_key text,
    ADD COLUMN coalesce_key text,
    ADD COLUMN event_at timestamptz;

-- A delivery of an ordering route waits while an earlier one of its key is unsettled.
CREATE INDEX deliveries_order_unsettled ON deliveries (route_id, order_key, event_at, id)
    WHERE order_key IS NOT NULL
      AND status IN ('pending', 'throttled', 'held', 'in_flight');

-- The members of a coalescing window.
CREATE INDEX deliveries_coalesce_queued ON deliveries (route_id, coalesce_key, created_at)
    WHERE coalesce_key IS NOT NULL AND status IN ('pending', 'throttled');
