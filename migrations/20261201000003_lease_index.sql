-- no-transaction
-- Leases, for taking over the deliveries of a worker that stopped (see the queue index).
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_leases
    ON deliveries (lease_until)
    WHERE status = 'in_flight';
