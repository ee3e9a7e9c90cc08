-- Bulk replays: a filter over a team's deliveries, replayed in batches by a job that
-- keeps its place (`cursor`), so a restart resumes where it stopped.
CREATE TABLE replays (
    id           text PRIMARY KEY,
    team_id      text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    filter       jsonb NOT NULL,
    -- How many deliveries matched when the replay was asked for.
    total        integer NOT NULL,
    done         integer NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'cancelled')),
    -- The last delivery id replayed; deliveries are taken in id order.
    cursor       text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX replays_team ON replays (team_id, id DESC);
