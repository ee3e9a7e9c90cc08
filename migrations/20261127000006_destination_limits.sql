-- Per-destination limits, enforced across every worker process by the rows below:
-- `next_slot_at` is the earliest time the next send may start under a rate limit;
-- the budget columns count sends in the current hour and day. `limited` tells the
-- claim's fast path that this destination needs the careful one.

ALTER TABLE destinations
    ADD COLUMN next_slot_at timestamptz,
    ADD COLUMN budget_hour_start timestamptz,
    ADD COLUMN budget_hour_used integer NOT NULL DEFAULT 0,
    ADD COLUMN budget_day_start timestamptz,
    ADD COLUMN budget_day_used integer NOT NULL DEFAULT 0,
    ADD COLUMN limited boolean GENERATED ALWAYS AS (
        settings ?| ARRAY['rate_per_minute', 'max_in_flight', 'budget_per_hour', 'budget_per_day']
    ) STORED;

-- A send slot a throttled delivery has reserved under its destination's rate limit.
ALTER TABLE deliveries
    ADD COLUMN slot_at timestamptz;

-- Counting a destination's sends in flight, for its concurrency limit.
CREATE INDEX deliveries_destination_in_flight ON deliveries (destination_id)
    WHERE status = 'in_flight';
-- Releasing a destination's held deliveries.
CREATE INDEX deliveries_destination_held ON deliveries (destination_id, id)
    WHERE status = 'held';
-- The upkeep sweep now also rescues throttled deliveries whose task was lost.
DROP INDEX deliveries_unsettled;
CREATE INDEX deliveries_unsettled ON deliveries (next_attempt_at, updated_at)
    WHERE status IN ('pending', 'in_flight', 'throttled');
