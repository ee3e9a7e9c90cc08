-- A read database: an API key's last write position, so its reads go to the replica
-- only once the replica has replayed it.
ALTER TABLE api_keys ADD COLUMN wrote_lsn pg_lsn;
