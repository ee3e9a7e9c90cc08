-- How often a sender repeated an event after it was accepted (a retry, a redelivery),
-- and when it last did: shown on the event, written only when a repeat arrives.
ALTER TABLE events
    ADD COLUMN duplicates integer NOT NULL DEFAULT 0,
    ADD COLUMN last_duplicate_at timestamptz;
