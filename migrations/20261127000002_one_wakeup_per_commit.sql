-- apalis-postgres wakes workers with one NOTIFY per inserted task, and PostgreSQL
-- serialises commits that carry notifications. An ingest commit holds many tasks, so
-- replace the per-row trigger with a per-statement one whose payload is the same for
-- every task of a queue: PostgreSQL folds identical notifications in a transaction, so
-- a commit sends one wake-up per queue however many tasks it holds. Workers only use
-- the notification as a signal to poll (the id in it is not read).
-- Needs the apalis schema, which `switchyard migrate` sets up first. Should a later
-- apalis-postgres migration bring its trigger back, both fire: still correct.

DROP TRIGGER IF EXISTS notify_workers ON apalis.jobs;

CREATE FUNCTION switchyard_notify_new_jobs() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(
        'apalis::job::insert',
        json_build_object('job_type', due.job_type, 'id', '00000000000000000000000000')::text
    )
    FROM (SELECT DISTINCT job_type FROM new_jobs WHERE run_at <= now()) AS due;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER switchyard_notify_workers
    AFTER INSERT ON apalis.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION switchyard_notify_new_jobs();
