-- The deliveries table is the delivery queue: a delivery is due when it is `pending` (or
-- `throttled`) and its `next_attempt_at` has passed. A claim marks a batch `in_flight`
-- with a lease (`lease_until`, on the database's clock) and the attempt it started
-- (`current_attempt_id`, which fences every outcome write). A lease that runs out makes
-- the delivery claimable again. No job row is written per delivery any more.

ALTER TABLE deliveries
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN current_attempt_id text;

-- A delivery in flight now was sent by a worker of the previous release: its lease is
-- taken as expired, so the first claim takes it over (an HTTP, Slack or email delivery
-- is sent again; a routine fire becomes `unknown_outcome`). Bumping `task_seq` makes the
-- outcome such a worker may still write match no row. (Whatever else it tries fails on
-- the destination columns this migration moves.)
UPDATE deliveries d SET
    lease_until = '-infinity',
    current_attempt_id = (
        SELECT a.id FROM attempts a
        WHERE a.delivery_id = d.id AND a.status = 'in_flight'
        ORDER BY a.number DESC LIMIT 1
    ),
    task_seq = d.task_seq + 1
WHERE d.status = 'in_flight';
-- Every queued delivery has a due time (the previous release always set one). Checked
-- for rows written from now on; the existing ones are checked without blocking writes
-- in a migration of its own.
UPDATE deliveries SET next_attempt_at = updated_at
WHERE status IN ('pending', 'throttled') AND next_attempt_at IS NULL;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_queued_have_a_due_time
    CHECK (status NOT IN ('pending', 'throttled') OR next_attempt_at IS NOT NULL) NOT VALID;

-- The previous release's delivery tasks still waiting: their deliveries are due rows
-- now. (Finished ones go with the hourly retention.)
DELETE FROM apalis.jobs
WHERE job_type = 'switchyard::deliveries' AND status IN ('Pending', 'Queued', 'Running');

-- The previous release's ingress still writes `task_seq` while an upgrade rolls out, and
-- ingest must not fail then: the column goes in the next release.
COMMENT ON COLUMN deliveries.task_seq IS
    'Unused since the deliveries table became the queue; dropped by the next release.';

-- What delivering changes about a destination (its state, back-off, circuit breaker and
-- limit windows) lives apart from its configuration: the configuration tables notify
-- every ingress on each change (it clears their source caches), and delivering must not.
-- One row per destination, made with it.
CREATE TABLE destination_runtime (
    id                    text PRIMARY KEY REFERENCES destinations (id) ON DELETE CASCADE,
    team_id               text NOT NULL,
    state                 text NOT NULL DEFAULT 'active',
    state_reason          text,
    paused_until          timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    cooldown_seconds      integer NOT NULL DEFAULT 0,
    probe_at              timestamptz,
    probe_delivery_id     text,
    next_slot_at          timestamptz,
    budget_hour_start     timestamptz,
    budget_hour_used      integer NOT NULL DEFAULT 0,
    budget_day_start      timestamptz,
    budget_day_used       integer NOT NULL DEFAULT 0
) WITH (fillfactor = 70);
CREATE INDEX destination_runtime_team ON destination_runtime (team_id, id);

INSERT INTO destination_runtime (
    id, team_id, state, state_reason, paused_until, consecutive_failures, cooldown_seconds,
    probe_at, probe_delivery_id, next_slot_at, budget_hour_start, budget_hour_used,
    budget_day_start, budget_day_used
)
SELECT id, team_id, state, state_reason, paused_until, consecutive_failures,
       cooldown_seconds, probe_at, probe_delivery_id, next_slot_at, budget_hour_start,
       budget_hour_used, budget_day_start, budget_day_used
FROM destinations;

-- A destination gets its runtime row in the statement that creates it, whichever
-- release's code creates it.
CREATE FUNCTION switchyard_destination_runtime() RETURNS trigger AS $$
BEGIN
    INSERT INTO destination_runtime (id, team_id) VALUES (NEW.id, NEW.team_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER destinations_runtime AFTER INSERT ON destinations
    FOR EACH ROW EXECUTE FUNCTION switchyard_destination_runtime();

-- The probe index served the sweep that no longer runs: a probe is a due delivery now.
DROP INDEX destinations_probe_due;
-- The rescue sweep's index: a lease replaces the sweep.
DROP INDEX deliveries_unsettled;

-- Moved to destination_runtime. Processes of the previous release that read them (its
-- workers and web) are stopped or replaced by this release's (see docs/deploy.md); its
-- ingress reads none of them and keeps taking webhooks throughout.
ALTER TABLE destinations
    DROP COLUMN state,
    DROP COLUMN state_reason,
    DROP COLUMN paused_until,
    DROP COLUMN consecutive_failures,
    DROP COLUMN cooldown_seconds,
    DROP COLUMN probe_at,
    DROP COLUMN probe_delivery_id,
    DROP COLUMN next_slot_at,
    DROP COLUMN budget_hour_start,
    DROP COLUMN budget_hour_used,
    DROP COLUMN budget_day_start,
    DROP COLUMN budget_day_used;

ALTER TABLE destination_runtime SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_cost_delay = 0
);
