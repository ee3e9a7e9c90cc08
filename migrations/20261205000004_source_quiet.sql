-- Upstream health: a source may ask to be watched for silence. Once it has received
-- events and then gets none for `quiet_after_minutes`, it is recorded as quiet here (one
-- row, so one alert across every worker) until events flow again. Kept apart from
-- `sources`, whose change trigger clears every ingress's cache.
ALTER TABLE sources ADD COLUMN quiet_after_minutes integer
    CHECK (quiet_after_minutes BETWEEN 1 AND 10080);

CREATE TABLE source_quiet (
    source_id      text PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    team_id        text NOT NULL,
    -- When the silence was noticed, and the last event before it.
    since          timestamptz NOT NULL,
    last_event_at  timestamptz NOT NULL
);

ALTER TABLE alert_settings ADD COLUMN source_quiet boolean NOT NULL DEFAULT true;
