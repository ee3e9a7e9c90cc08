-- A destination's kind-specific fields move into one document tagged by its kind,
-- `config`, shaped as the API shows them:
--   {"kind": "routine", "fire_url": …, "token_hint": …}
--   {"kind": "slack", "url_hint": …}
--   {"kind": "email", "to": […]}
--   {"kind": "http", "url": …, "method": …, "header_names": […], "auth": …}
-- `settings` keeps only the limits (the `limited` column reads them); the secrets stay
-- in `sealed_credentials`.
--
-- For one release `url` and the per-kind keys of `settings` (`credential_hint`, `to`,
-- `method`, `header_names`, `auth`) stay, kept in step with `config` by the triggers
-- below, so that processes of the previous release still running during a deploy read
-- and write what they expect. Switchyard's own writes always set `config` and never
-- `url`; the previous release's always set `url` and never `config`. The next release
-- drops the triggers, the functions and the legacy columns and keys.

-- What the previous release's columns say, as a config.
CREATE FUNCTION destination_config_of(kind text, url text, settings jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind
        WHEN 'routine' THEN jsonb_build_object(
            'kind', kind, 'fire_url', url,
            'token_hint', coalesce(settings->>'credential_hint', '…'))
        WHEN 'slack' THEN jsonb_build_object(
            'kind', kind, 'url_hint', coalesce(settings->>'credential_hint', '…'))
        WHEN 'email' THEN jsonb_build_object(
            'kind', kind, 'to', coalesce(settings->'to', '[]'))
        WHEN 'http' THEN jsonb_build_object(
            'kind', kind, 'url', url,
            'method', coalesce(settings->>'method', 'POST'),
            'header_names', coalesce(settings->'header_names', '[]'),
            'auth', settings->'auth')
    END
$$;

-- `settings` with the per-kind keys the previous release reads, taken from `config`.
CREATE FUNCTION destination_legacy_settings(config jsonb, settings jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT (settings - ARRAY['credential_hint', 'to', 'method', 'header_names', 'auth'])
        || jsonb_strip_nulls(jsonb_build_object(
            'credential_hint', coalesce(config->>'token_hint', config->>'url_hint'),
            'to', config->'to',
            'method', config->'method',
            'header_names', config->'header_names',
            'auth', config->'auth'))
$$;

ALTER TABLE destinations ADD COLUMN config jsonb;
UPDATE destinations SET config = destination_config_of(kind, url, settings);
ALTER TABLE destinations
    ALTER COLUMN config SET NOT NULL,
    ADD CONSTRAINT destinations_config_is_of_its_kind CHECK (config->>'kind' = kind);

-- A write of the previous release: its columns make the config.
CREATE FUNCTION destination_config_from_legacy() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR NEW.config IS NULL THEN
        NEW.config := destination_config_of(NEW.kind, NEW.url, NEW.settings);
    END IF;
    RETURN NEW;
END
$$;

-- A write of this release: the config makes the previous release's columns.
CREATE FUNCTION destination_legacy_from_config() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.url := CASE NEW.kind
        WHEN 'http' THEN NEW.config->>'url'
        WHEN 'routine' THEN NEW.config->>'fire_url'
    END;
    NEW.settings := destination_legacy_settings(NEW.config, NEW.settings);
    RETURN NEW;
END
$$;

-- Triggers fire in name order: on an insert, the config is made (if the writer did not
-- send one) before the legacy columns are made from it.
CREATE TRIGGER destinations_1_config_from_legacy
    BEFORE INSERT OR UPDATE OF url ON destinations
    FOR EACH ROW EXECUTE FUNCTION destination_config_from_legacy();
CREATE TRIGGER destinations_2_legacy_from_config
    BEFORE INSERT OR UPDATE OF config ON destinations
    FOR EACH ROW EXECUTE FUNCTION destination_legacy_from_config();
