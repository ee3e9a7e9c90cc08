-- A team's Anthropic API keys, sealed: the team's own (workspace_id '') and at most one
-- per Anthropic workspace its events come from. Enrichment and reconciliation call the
-- API with the key of the event's workspace, falling back to the team's.
CREATE TABLE anthropic_keys (
    team_id       text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    workspace_id  text NOT NULL DEFAULT '',
    sealed_key    bytea NOT NULL,
    key_last4     text NOT NULL,
    last_used_at  timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, workspace_id)
);
