//! API keys: shown once, stored as a sha256 hash. Keys carry 256 random bits, so a slow
//! password hash would add nothing but latency to every API call.

use sha2::{Digest, Sha256};
use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::{ApiKeyId, TeamId};
use crate::model::ApiKey;
use crate::secrets::random_token;

const KEY_PREFIX: &str = "sy_live_";

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Creates a key and returns it with the only copy of its plaintext.
#[tracing::instrument(skip_all)]
pub async fn create(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    name: &str,
) -> Result<(ApiKey, String), StoreError> {
    let plaintext = format!("{KEY_PREFIX}{}", random_token(32));
    let key = sqlx::query_as::<_, ApiKey>(
        "INSERT INTO api_keys (id, team_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, team_id, name, prefix, created_at, last_used_at, revoked_at",
    )
    .bind(ApiKeyId::generate())
    .bind(team)
    .bind(name)
    .bind(&plaintext[..KEY_PREFIX.len() + 4])
    .bind(hash(&plaintext))
    .fetch_one(db)
    .await?;
    Ok((key, plaintext))
}

/// A presented key that exists and is not revoked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Authenticated {
    pub team_id: TeamId,
    pub name: String,
    /// The primary's WAL position after this key's last write, while a read database
    /// is in use: its reads wait for the replica to pass it.
    pub wrote_lsn: Option<String>,
}

/// The team a presented key acts for, if the key exists and is not revoked.
#[tracing::instrument(skip_all)]
pub async fn authenticate(
    db: impl PgExecutor<'_>,
    key: &str,
) -> Result<Option<Authenticated>, StoreError> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 200 {
        return Ok(None);
    }
    // Touch `last_used_at` at most once a minute, so reads stay reads.
    Ok(sqlx::query_as::<_, Authenticated>(
        "WITH found AS (
             SELECT id, team_id, name, last_used_at, wrote_lsn FROM api_keys
             WHERE key_hash = $1 AND revoked_at IS NULL
         ), touched AS (
             UPDATE api_keys SET last_used_at = now()
             FROM found
             WHERE api_keys.id = found.id
               AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
         )
         SELECT team_id, name, wrote_lsn::text AS wrote_lsn FROM found",
    )
    .bind(hash(key))
    .fetch_optional(db)
    .await?)
}

/// Notes on the presented key that it has just written: the primary's WAL insert
/// position now is past that write's commit.
#[tracing::instrument(skip_all)]
pub async fn note_write(db: impl PgExecutor<'_>, key: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE api_keys SET wrote_lsn = pg_current_wal_insert_lsn() WHERE key_hash = $1")
        .bind(hash(key))
        .execute(db)
        .await?;
    Ok(())
}

/// The team's keys, live ones first, newest first.
#[tracing::instrument(skip_all)]
pub async fn list(db: impl PgExecutor<'_>, team: &TeamId) -> Result<Vec<ApiKey>, StoreError> {
    Ok(sqlx::query_as::<_, ApiKey>(
        "SELECT id, team_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys
         WHERE team_id = $1 ORDER BY revoked_at IS NOT NULL, created_at DESC",
    )
    .bind(team)
    .fetch_all(db)
    .await?)
}

/// Revokes a key at once; `NotFound` when the team has no such live key.
#[tracing::instrument(skip_all)]
pub async fn revoke(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &ApiKeyId,
) -> Result<ApiKey, StoreError> {
    sqlx::query_as::<_, ApiKey>(
        "UPDATE api_keys SET revoked_at = now()
         WHERE team_id = $1 AND id = $2 AND revoked_at IS NULL
         RETURNING id, team_id, name, prefix, created_at, last_used_at, revoked_at",
    )
    .bind(team)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)
}
