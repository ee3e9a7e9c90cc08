-- What a route makes of an event: a filter (a boolean minijinja expression evaluated at
-- ingest), a template for what the destination takes, and an email subject template.
ALTER TABLE routes
    ADD COLUMN filter text,
    ADD COLUMN template text,
    ADD COLUMN subject text;
