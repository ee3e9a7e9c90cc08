-- The spine: teams, keys, sources, destinations, routes, events, deliveries, attempts.
-- Ids are prefixed ULIDs (`evt_01…`): text, unique, and sortable by creation time, so
-- lists page on `id` alone.

CREATE TABLE teams (
    id              text PRIMARY KEY,
    slug            text NOT NULL UNIQUE,
    name            text NOT NULL,
    retention_days  integer NOT NULL DEFAULT 30 CHECK (retention_days > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    team_id       text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name          text NOT NULL,
    -- The first characters of the key, so a person can tell keys apart.
    prefix        text NOT NULL,
    -- sha256 of the whole key: keys are 256-bit random, so a fast hash is enough.
    key_hash      bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_team ON api_keys (team_id, id);

CREATE TABLE sources (
    id          text PRIMARY KEY,
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        text NOT NULL,
    provider    text NOT NULL,
    -- The unguessable path segment of the ingest URL.
    token       text NOT NULL UNIQUE,
    settings    jsonb NOT NULL DEFAULT '{}',
    body_limit  integer NOT NULL DEFAULT 1048576 CHECK (body_limit BETWEEN 1024 AND 10485760),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sources_team ON sources (team_id, id);

-- Up to two active secrets per source, so a sender's secret rotates without downtime.
-- `ciphertext` is AES-256-GCM under the server's secret key.
CREATE TABLE source_secrets (
    id          text PRIMARY KEY,
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    source_id   text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX source_secrets_source ON source_secrets (source_id);

-- Why requests were refused, newest kept, so a person can see why a secret is wrong.
CREATE TABLE source_rejections (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id      text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    source_id    text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL,
    reason       text NOT NULL
);
CREATE INDEX source_rejections_source ON source_rejections (source_id, id DESC);

CREATE TABLE destinations (
    id              text PRIMARY KEY,
    team_id         text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name            text NOT NULL,
    kind            text NOT NULL,
    state           text NOT NULL DEFAULT 'active',
    state_reason    text,
    paused_until    timestamptz,
    url             text NOT NULL,
    -- `whsec_…` the destination's requests are signed with; encrypted.
    signing_secret  bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX destinations_team ON destinations (team_id, id);

CREATE TABLE routes (
    id              text PRIMARY KEY,
    team_id         text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name            text NOT NULL,
    source_id       text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    destination_id  text NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    event_types     text[] NOT NULL,
    paused          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_team ON routes (team_id, id);
CREATE INDEX routes_source ON routes (source_id);

CREATE TABLE events (
    id           text PRIMARY KEY,
    team_id      text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    source_id    text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    event_type   text,
    dedup_key    text NOT NULL,
    headers      jsonb NOT NULL,
    -- The exact bytes received: signatures are over bytes, never re-serialized JSON.
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE INDEX events_team ON events (team_id, id DESC);
CREATE INDEX events_source ON events (source_id, id DESC);

-- Dedup lives apart from events so events can be partitioned or pruned by time. A row
-- whose `expires_at` has passed no longer dedups and is overwritten by the next event.
CREATE TABLE event_dedup (
    source_id   text NOT NULL,
    dedup_key   text NOT NULL,
    team_id     text NOT NULL,
    event_id    text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (source_id, dedup_key)
);
CREATE INDEX event_dedup_expiry ON event_dedup (expires_at);

CREATE TABLE deliveries (
    id               text PRIMARY KEY,
    team_id          text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    event_id         text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    route_id         text REFERENCES routes (id) ON DELETE SET NULL,
    destination_id   text NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    status           text NOT NULL,
    attempt_count    integer NOT NULL DEFAULT 0,
    -- Attempts since the last replay: the retry schedule restarts with each replay.
    series_attempts  integer NOT NULL DEFAULT 0,
    replay_count     integer NOT NULL DEFAULT 0,
    -- Bumped whenever a task is pushed; a task carrying an older value is stale and
    -- does nothing, so a re-enqueued or duplicated task never sends twice.
    task_seq         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_team ON deliveries (team_id, id DESC);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_team_status ON deliveries (team_id, status, id DESC);

CREATE TABLE attempts (
    id                       text PRIMARY KEY,
    team_id                  text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    delivery_id              text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number                   integer NOT NULL,
    replay                   boolean NOT NULL DEFAULT false,
    status                   text NOT NULL,
    started_at               timestamptz NOT NULL,
    duration_ms              integer,
    response_status          integer,
    response_excerpt         text,
    error                    text,
    claude_code_session_id   text,
    claude_code_session_url  text,
    UNIQUE (delivery_id, number)
);

-- Configuration changes wake every ingress process so its source cache stays fresh.
CREATE FUNCTION switchyard_config_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('switchyard_config', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sources_changed AFTER INSERT OR UPDATE OR DELETE ON sources
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_config_changed();
CREATE TRIGGER source_secrets_changed AFTER INSERT OR UPDATE OR DELETE ON source_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_config_changed();
CREATE TRIGGER routes_changed AFTER INSERT OR UPDATE OR DELETE ON routes
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_config_changed();
CREATE TRIGGER destinations_changed AFTER INSERT OR UPDATE OR DELETE ON destinations
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_config_changed();
