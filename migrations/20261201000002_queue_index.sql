-- no-transaction
-- Due deliveries by destination in due order: the claim walks the destinations that have
-- any (one index descent each) and takes each one's oldest. Built without blocking
-- writes, so outside a transaction and alone in its file; IF NOT EXISTS lets a run that
-- was cut short go again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_queue
    ON deliveries (destination_id, next_attempt_at, id)
    WHERE status IN ('pending', 'throttled');
