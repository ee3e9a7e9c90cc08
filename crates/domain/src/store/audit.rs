//! The audit log: who changed what in a team, written in the transaction of the change.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::TeamId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub at: DateTime<Utc>,
}

/// Notes that `actor` did `action` (`source.create`, `member.remove`, …) to `target`.
#[tracing::instrument(skip_all, fields(action))]
pub async fn record(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    actor: &str,
    action: &str,
    target: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (team_id, actor, action, target) VALUES ($1, $2, $3, $4)")
        .bind(team)
        .bind(actor)
        .bind(action)
        .bind(target)
        .execute(db)
        .await?;
    Ok(())
}

/// The latest entries, newest first.
#[tracing::instrument(skip_all)]
pub async fn latest(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    Ok(sqlx::query_as::<_, Entry>(
        "SELECT actor, action, target, at FROM audit_log WHERE team_id = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(team)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
