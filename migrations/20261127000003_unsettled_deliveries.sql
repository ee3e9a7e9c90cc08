-- The upkeep sweep looks for deliveries left pending or in flight without a live task;
-- only unsettled rows are indexed, so the index stays small however long history grows.
CREATE INDEX deliveries_unsettled ON deliveries (next_attempt_at, updated_at)
    WHERE status IN ('pending', 'in_flight');
