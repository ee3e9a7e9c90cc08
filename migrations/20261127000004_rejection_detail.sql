-- What a refused request looked like: its headers with credentials redacted and the
-- start of its body, so the owner can see what the sender actually sent.
ALTER TABLE source_rejections
    ADD COLUMN headers jsonb,
    ADD COLUMN body_excerpt text;
