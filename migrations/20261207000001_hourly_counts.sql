-- The overview's counts by the hour, so its totals and charts read a row an hour instead
-- of every delivery of the window. Upkeep counts each hour once it has closed, counts it
-- again while it holds deliveries on their way, and after a replay re-opened one of its
-- deliveries (which marks the hour stale).
CREATE TABLE hourly_counts (
    team_id    text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    events     bigint NOT NULL DEFAULT 0,
    -- Deliveries created in the hour, by where they stood when it was counted.
    succeeded  bigint NOT NULL DEFAULT 0,
    failed     bigint NOT NULL DEFAULT 0,
    unknown    bigint NOT NULL DEFAULT 0,
    pending    bigint NOT NULL DEFAULT 0,
    retrying   bigint NOT NULL DEFAULT 0,
    held       bigint NOT NULL DEFAULT 0,
    -- First attempts that succeeded, by latency bucket (`stats::LATENCY_BOUNDS_MS`).
    latency    bigint[] NOT NULL DEFAULT '{}',
    stale      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (team_id, hour)
);

-- What the next count takes again: hours still settling or re-opened.
CREATE INDEX hourly_counts_unsettled ON hourly_counts (hour)
    WHERE stale OR pending > 0 OR held > 0;

-- Hours before this one are counted. It starts a week and a day back, so the overview of
-- an upgraded database fills in from its history.
CREATE TABLE hourly_counts_until (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    counted_until timestamptz NOT NULL
);
INSERT INTO hourly_counts_until (counted_until) VALUES (date_trunc('hour', now()) - interval '8 days');
