-- Deliveries, attempts and the job queue churn like a queue: every attempt updates its
-- delivery, its attempt and its job row, and fetches and claims read the newest rows
-- through indexes that keep pointing at the dead versions until a vacuum removes them.
-- At PostgreSQL's default (vacuum once 20 % of a table is dead) a table holding weeks
-- of history lets the hot end rot for hours under load. Vacuum these once 2,000 rows
-- plus 1 % of the table are dead instead, and without the cost-based pauses.
ALTER TABLE apalis.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE attempts SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);
