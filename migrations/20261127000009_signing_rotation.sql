-- Rotating an HTTP destination's signing secret: the old one keeps signing beside the
-- new until `previous_signing_until`, so receivers can switch without a gap.
ALTER TABLE destinations
    ADD COLUMN previous_signing_secret bytea,
    ADD COLUMN previous_signing_until timestamptz;
