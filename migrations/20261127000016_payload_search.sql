-- The events log searches inside JSON bodies (`payload.issue.number = 42`). Bodies are
-- the raw bytes received, so this reads them as JSON where they are JSON, NULL elsewhere.
CREATE FUNCTION switchyard_body_json(body bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 1000 AS $$
BEGIN
    RETURN convert_from(body, 'UTF8')::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- Finding an event by its dedup key (a GitHub delivery GUID, an Anthropic whe_ id).
CREATE INDEX events_team_dedup ON events (team_id, dedup_key);
