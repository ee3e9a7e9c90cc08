-- Signing in: a verified address, and server-side sessions. A session's id is a random
-- token held only by the browser; the database keeps its sha256, so a leaked table does
-- not sign anyone in. Each session carries its own CSRF token.
ALTER TABLE users
    ADD COLUMN email_verified_at timestamptz;

CREATE TABLE sessions (
    id_hash       bytea PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_idle ON sessions (last_seen_at);
