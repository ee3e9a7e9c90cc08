-- no-transaction
-- Throttled deliveries by destination in due order: they were looked at (and given a
-- rate slot or a budget window) before the pending ones still waiting, so the claim
-- takes a destination's due throttled deliveries first (see the queue index).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_throttled
    ON deliveries (destination_id, next_attempt_at, id)
    WHERE status = 'throttled';
