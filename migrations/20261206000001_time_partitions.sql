-- Events, their fetched objects and attempts become partitioned tables, a partition a
-- day, by the range of their ids: ids are ULIDs, so a range of time is a range of ids,
-- a lookup by id reads one partition, and the primary keys stay as they are. Retention
-- then drops whole days instead of deleting rows. Deliveries stay one table: they are
-- the queue, and the claim's statements slowed down with every partition they spanned.
--
-- The rows already stored do not move. Each table is renamed and attached as the first
-- partition, holding every id up to the start of tomorrow (UTC); its indexes are adopted
-- by the new parent's, so nothing is rebuilt but the attempts' delivery index (a unique
-- index must contain the partition key, and (delivery_id, number) does not). Attaching
-- reads each table once to check its bound. From tomorrow on, rows go to the daily
-- partitions the maintenance job makes ahead of time (the first week as soon as the
-- migration has run); a default partition catches any row no partition covers.
--
-- Nothing may reference a partitioned table (a detach would scan the referencing
-- tables, and a drop could not go ahead while they hold rows), so the foreign keys into
-- events go, and the attempts' into deliveries (a batch of deleted deliveries would
-- otherwise look for attempts in every partition); retention deletes a day's
-- dependants with it.

ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE event_objects DROP CONSTRAINT event_objects_event_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;
-- A team's deletion now takes its fetched objects the way it takes its events.
ALTER TABLE event_objects
    ADD CONSTRAINT event_objects_team_id_fkey FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE;

-- The smallest id of `kind` that could be made at `at` (Rust's `first_at`).
CREATE FUNCTION pg_temp.first_id_at(kind text, at timestamptz) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    ms bigint := floor(extract(epoch FROM at) * 1000)::bigint;
    crockford constant text := '0123456789abcdefghjkmnpqrstvwxyz';
    stamp text := '';
BEGIN
    FOR i IN 1..10 LOOP
        stamp := substr(crockford, (ms % 32)::int + 1, 1) || stamp;
        ms := ms / 32;
    END LOOP;
    RETURN kind || '_' || stamp || repeat('0', 16);
END $$;

-- Turns `parent` into a table partitioned by range of `key`, with the existing table
-- as its first partition (everything before `until`) and a default partition.
CREATE FUNCTION pg_temp.partition_in_place(parent text, key text, kind text, until timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    first text := parent || '_before_' || to_char(until AT TIME ZONE 'UTC', 'YYYYMMDD');
    ix record;
    con record;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', parent, first);
    -- Index names are unique per schema: the first partition's take its own name.
    FOR ix IN
        SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = first::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.name,
                       first || substr(ix.name, length(parent) + 1));
    END LOOP;
    EXECUTE format(
        'CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)
         PARTITION BY RANGE (%I)', parent, first, key);
    -- Primary key and foreign keys as they were (the attach adopts the partition's own).
    FOR con IN
        SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = first::regclass AND contype IN ('p', 'f')
        ORDER BY contype DESC
    LOOP
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', parent,
                       CASE WHEN starts_with(con.conname, first)
                            THEN parent || substr(con.conname, length(first) + 1)
                            ELSE con.conname END,
                       con.def);
    END LOOP;
    -- Every other index, same definition; a unique one without the key becomes plain.
    FOR ix IN
        SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisunique AS is_unique,
               EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = first::regclass AND a.attname = key
                         AND a.attnum = ANY (i.indkey)) AS has_key
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = first::regclass AND NOT i.indisprimary
    LOOP
        ix.def := replace(ix.def, ' ON public.' || first || ' ', ' ON public.' || parent || ' ');
        ix.def := replace(ix.def, 'INDEX ' || ix.name || ' ',
                          'INDEX ' || parent || substr(ix.name, length(first) + 1) || ' ');
        IF ix.is_unique AND NOT ix.has_key THEN
            ix.def := replace(ix.def, 'CREATE UNIQUE INDEX', 'CREATE INDEX');
        END IF;
        EXECUTE ix.def;
    END LOOP;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                   parent, first, pg_temp.first_id_at(kind, until));
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
END $$;

SELECT pg_temp.partition_in_place(t.parent, t.key, t.kind,
                                  date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                      + interval '1 day')
FROM (VALUES ('events', 'id', 'evt'),
             ('event_objects', 'event_id', 'evt'),
             ('attempts', 'id', 'att')) AS t (parent, key, kind);

-- The unsettled deliveries, by event: retention checks a day holds none before it drops
-- it, and the index is as small as the backlog (building it reads the table once).
CREATE INDEX deliveries_open ON deliveries (event_id, id)
    WHERE status IN ('pending', 'held', 'throttled', 'in_flight', 'unknown_outcome');
