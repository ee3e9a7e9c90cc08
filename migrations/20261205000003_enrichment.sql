-- Enrichment: a route may ask for the object an Anthropic event names (the session, the
-- vault credential, ...) to be fetched before rendering. The object is fetched once per
-- event, kept here, and every enriching route of the event, replays included, renders
-- with what was first fetched. `object` is null when Anthropic no longer has it (404)
-- or the event names nothing to fetch (`*.deleted`); `note` says which.
ALTER TABLE routes ADD COLUMN enrich boolean NOT NULL DEFAULT false;

CREATE TABLE event_objects (
    event_id    text PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    team_id     text NOT NULL,
    object      jsonb,
    note        text,
    fetched_at  timestamptz NOT NULL DEFAULT now()
);

-- What an attempt adds about how it was built (an enrichment that found nothing).
ALTER TABLE attempts ADD COLUMN note text;

-- A team's Anthropic key is missing or refused: one alert until a key is stored again.
ALTER TABLE alert_settings ADD COLUMN anthropic_key boolean NOT NULL DEFAULT true;
