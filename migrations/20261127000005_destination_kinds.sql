-- Routine, Slack and email destinations. `url` is now the target only where it is not a
-- secret (HTTP, a routine's fire URL); Slack's webhook URL is a credential and email has
-- none. `settings` holds what each kind needs that is safe to show; `sealed_credentials`
-- what is not (a routine's token, a Slack URL, header values), sealed like the other
-- secrets. Attempts keep the request headers they sent, with credentials redacted.

ALTER TABLE destinations
    ALTER COLUMN url DROP NOT NULL,
    ADD COLUMN settings jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN sealed_credentials bytea;

ALTER TABLE attempts
    ADD COLUMN request_headers jsonb;

-- The session a routine fire started, on the delivery too, so lists show it.
ALTER TABLE deliveries
    ADD COLUMN claude_code_session_id text,
    ADD COLUMN claude_code_session_url text;
