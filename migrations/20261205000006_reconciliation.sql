-- Reconciliation: Anthropic drops a webhook after its third failed attempt and never
-- backfills. An Anthropic source may ask for passes that list its sessions and
-- synthesize the status events it should have received.
ALTER TABLE sources
    ADD COLUMN reconcile boolean NOT NULL DEFAULT false,
    ADD COLUMN reconcile_interval_s integer NOT NULL DEFAULT 300
        CHECK (reconcile_interval_s BETWEEN 60 AND 86400),
    ADD COLUMN reconcile_lookback_s integer NOT NULL DEFAULT 86400
        CHECK (reconcile_lookback_s BETWEEN 3600 AND 604800);

-- `synthesized`: made by a pass, not received. `reconciled_by`: a real webhook for a
-- transition a pass had already synthesized as that event; it is kept, and delivers
-- nothing.
ALTER TABLE events
    ADD COLUMN synthesized boolean NOT NULL DEFAULT false,
    ADD COLUMN reconciled_by text;

-- Each session's latest known status on a reconciling source, as the webhook type that
-- announces it and Anthropic's time for it. Ingest writes it for every status event such
-- a source receives, a pass for every event it synthesizes. Its row lock is what keeps
-- a pass and a real webhook of the same session from both delivering a transition: each
-- takes it before deciding. `done` says why a session is no longer watched:
-- `terminated`, `gone` (404) or `unchanged` (a week without change).
CREATE TABLE session_watch (
    source_id        text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    session_id       text NOT NULL,
    team_id          text NOT NULL,
    status_type      text NOT NULL,
    status_at        timestamptz NOT NULL,
    organization_id  text,
    workspace_id     text,
    changed_at       timestamptz NOT NULL,
    done             text,
    PRIMARY KEY (source_id, session_id)
);
CREATE INDEX session_watch_watched ON session_watch (source_id, session_id) WHERE done IS NULL;

-- What passes synthesized: a real webhook of the same session and type whose created_at
-- is within the tolerance of `created_at`, or after `since` (the status stored before)
-- and not later than that, is the same transition.
CREATE TABLE synthesized_transitions (
    source_id   text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    session_id  text NOT NULL,
    event_type  text NOT NULL,
    created_at  timestamptz NOT NULL,
    since       timestamptz,
    pass_at     timestamptz NOT NULL,
    event_id    text NOT NULL,
    PRIMARY KEY (source_id, session_id, event_type, created_at)
);

-- A reconciling source's passes: when the next is due (one worker takes each slot by
-- moving it on) and how the last one went. Apart from `sources`, whose change trigger
-- clears every ingress's cache.
CREATE TABLE reconcile_passes (
    source_id           text PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    team_id             text NOT NULL,
    next_at             timestamptz NOT NULL,
    -- Whether the sessions this source already received status events for have been
    -- read into `session_watch` since reconciliation was turned on.
    seeded              boolean NOT NULL DEFAULT false,
    started_at          timestamptz,
    finished_at         timestamptz,
    sessions_checked    integer NOT NULL DEFAULT 0,
    events_synthesized  integer NOT NULL DEFAULT 0,
    api_calls           integer NOT NULL DEFAULT 0,
    cut_short           text,
    error               text,
    -- The session list page a pass that ran out of calls stopped at: the next one
    -- starts there.
    resume_page         text,
    -- Until when a worker holds the pass it took: a pass longer than the interval is
    -- not started twice.
    running_until       timestamptz
);
CREATE INDEX reconcile_passes_due ON reconcile_passes (next_at);
