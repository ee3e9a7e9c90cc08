-- Which alerts a team wants and who gets them; and when each alert last went out, so a
-- repeat about the same destination or source waits an hour.
CREATE TABLE alert_settings (
    team_id               text PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    destination_disabled  boolean NOT NULL DEFAULT true,
    delivery_failed       boolean NOT NULL DEFAULT true,
    unknown_outcome       boolean NOT NULL DEFAULT true,
    source_rejecting      boolean NOT NULL DEFAULT true,
    -- Rejected requests from one source within 10 minutes that raise an alert.
    rejection_threshold   integer NOT NULL DEFAULT 20 CHECK (rejection_threshold BETWEEN 1 AND 100),
    notify_admins         boolean NOT NULL DEFAULT true,
    extra_recipients      text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE alert_sent (
    team_id  text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    kind     text NOT NULL,
    -- The destination's or source's id.
    subject  text NOT NULL,
    sent_at  timestamptz NOT NULL,
    PRIMARY KEY (team_id, kind, subject)
);
