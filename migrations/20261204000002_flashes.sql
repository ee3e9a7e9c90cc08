-- What a page shows once after a form's redirect: a new API key, a destination's
-- signing secret, a notice. Sealed like every secret, readable only by the user whose
-- form made it, read once, and gone after ten minutes.
CREATE TABLE flashes (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed      bytea NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX flashes_expires_at ON flashes (expires_at);
