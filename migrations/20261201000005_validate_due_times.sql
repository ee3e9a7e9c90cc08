-- no-transaction
-- Checks the existing deliveries against the rule the queue relies on (every queued one
-- has a due time) without blocking writes: VALIDATE takes a lock that lets ingest go on.
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_queued_have_a_due_time;
