//! A team's Anthropic API keys, sealed at rest: the team's own (workspace `""`) and one
//! per Anthropic workspace at most. Only the last four characters are ever shown.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::TeamId;

/// A stored key as it may be shown: never the key itself.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyInfo {
    /// `""` for the team's own key.
    pub workspace_id: String,
    pub key_last4: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Stores `sealed` as the key of `workspace` (`""`: the team's own), replacing the one
/// there; a new key starts with no error.
#[tracing::instrument(skip_all)]
pub async fn put(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    workspace: &str,
    sealed: &[u8],
    last4: &str,
    now: DateTime<Utc>,
) -> Result<KeyInfo, StoreError> {
    Ok(sqlx::query_as::<_, KeyInfo>(
        "INSERT INTO anthropic_keys (team_id, workspace_id, sealed_key, key_last4, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (team_id, workspace_id) DO UPDATE
             SET sealed_key = excluded.sealed_key, key_last4 = excluded.key_last4,
                 last_error = NULL, last_used_at = NULL, updated_at = excluded.updated_at
         RETURNING workspace_id, key_last4, last_used_at, last_error, updated_at",
    )
    .bind(team)
    .bind(workspace)
    .bind(sealed)
    .bind(last4)
    .bind(now)
    .fetch_one(db)
    .await?)
}

/// The team's keys, its own first, then by workspace.
#[tracing::instrument(skip_all)]
pub async fn list(db: impl PgExecutor<'_>, team: &TeamId) -> Result<Vec<KeyInfo>, StoreError> {
    Ok(sqlx::query_as::<_, KeyInfo>(
        "SELECT workspace_id, key_last4, last_used_at, last_error, updated_at
         FROM anthropic_keys WHERE team_id = $1 ORDER BY workspace_id",
    )
    .bind(team)
    .fetch_all(db)
    .await?)
}

/// Removes the key of `workspace` (`""`: the team's own); whether there was one.
#[tracing::instrument(skip_all)]
pub async fn delete(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    workspace: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM anthropic_keys WHERE team_id = $1 AND workspace_id = $2")
        .bind(team)
        .bind(workspace)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The sealed key stored for `workspace` exactly (`""`: the team's own).
#[tracing::instrument(skip_all)]
pub async fn sealed(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    workspace: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT sealed_key FROM anthropic_keys WHERE team_id = $1 AND workspace_id = $2",
    )
    .bind(team)
    .bind(workspace)
    .fetch_optional(db)
    .await?)
}

/// The sealed key calls for an event of `workspace` use: that workspace's, else the
/// team's own; with the workspace it stands for (`""`: the team's).
#[tracing::instrument(skip_all)]
pub async fn sealed_for(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    workspace: Option<&str>,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(sqlx::query_as::<_, (String, Vec<u8>)>(
        "SELECT workspace_id, sealed_key FROM anthropic_keys
         WHERE team_id = $1 AND workspace_id IN ($2, '')
         ORDER BY workspace_id DESC LIMIT 1",
    )
    .bind(team)
    .bind(workspace.unwrap_or_default())
    .fetch_optional(db)
    .await?)
}

/// Records how a call with the key went: its last use, and the error if it failed (a
/// success clears it). A key used often is written at most once a minute.
#[tracing::instrument(skip_all)]
pub async fn record_use(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    workspace: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE anthropic_keys SET last_used_at = $4, last_error = $3
         WHERE team_id = $1 AND workspace_id = $2
           AND (last_error IS DISTINCT FROM $3 OR last_used_at IS NULL
                OR last_used_at < $4 - interval '1 minute')",
    )
    .bind(team)
    .bind(workspace)
    .bind(error)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}
