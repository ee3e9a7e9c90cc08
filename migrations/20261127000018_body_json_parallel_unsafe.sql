-- switchyard_body_json catches parse errors in an exception block, which needs a
-- subtransaction; those cannot start inside a parallel query, so a large body search
-- that the planner ran in parallel failed. Keep it out of parallel plans.
ALTER FUNCTION switchyard_body_json(bytea) PARALLEL UNSAFE;
