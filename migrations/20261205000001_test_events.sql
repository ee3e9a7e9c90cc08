-- A person's test event, sent from a source's page: the logs mark it. Adding a column
-- with a constant default rewrites nothing.
ALTER TABLE events ADD COLUMN test boolean NOT NULL DEFAULT false;
