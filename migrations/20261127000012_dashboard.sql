-- What the dashboard needs beyond sessions: attempt counters for the sign-in forms,
-- single-use account links (verify an address, reset a password), invitations, and the
-- audit log of who changed what.

-- One fixed window per key ("login:ip:203.0.113.9", "login:account:ada@example.com").
-- Rows are tiny and the upkeep prunes windows long past.
CREATE TABLE throttle (
    key           text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL
);
CREATE INDEX throttle_window ON throttle (window_start);

-- A link mailed to a person. Only the sha256 of its token is kept; the token itself is
-- in the email alone. `used_at` makes each link single use.
CREATE TABLE account_links (
    token_hash  bytea PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX account_links_user ON account_links (user_id, purpose);

CREATE TABLE invitations (
    id           text PRIMARY KEY,
    team_id      text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE,
    invited_by   text REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz
);
CREATE INDEX invitations_team ON invitations (team_id, created_at DESC);

-- Who did what to a team's configuration. `actor` is a person's address or an API key's
-- name, kept as text so the record outlives the person or the key.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_team ON audit_log (team_id, id DESC);

-- The sources page counts each source's events of the last day.
CREATE INDEX events_source_received ON events (source_id, received_at);
