//! Attempt counters for the forms people sign in with: a fixed window per key, counted in
//! Postgres so every web process sees the same count.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgExecutor;

use super::StoreError;

/// At most `limit` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub limit: i32,
    pub window: Duration,
}

/// Counts one hit against `key`. `Ok(None)` when it is within the limit, or how long
/// until the window ends when it is not.
#[tracing::instrument(skip_all)]
pub async fn hit(
    db: impl PgExecutor<'_>,
    key: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<Option<Duration>, StoreError> {
    let (window_start, hits): (DateTime<Utc>, i32) = sqlx::query_as(
        "INSERT INTO throttle (key, window_start, hits) VALUES ($1, $2, 1)
         ON CONFLICT (key) DO UPDATE SET
             window_start = CASE WHEN throttle.window_start <= $3
                                 THEN $2 ELSE throttle.window_start END,
             hits = CASE WHEN throttle.window_start <= $3
                         THEN 1 ELSE throttle.hits + 1 END
         RETURNING window_start, hits",
    )
    .bind(key)
    .bind(now)
    .bind(now - limit.window)
    .fetch_one(db)
    .await?;
    Ok((hits > limit.limit).then(|| window_start + limit.window - now))
}

/// Forgets the count of `key`: a person who signed in is not held to earlier mistakes.
#[tracing::instrument(skip_all)]
pub async fn clear(db: impl PgExecutor<'_>, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM throttle WHERE key = $1")
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes windows that ended a day ago or more. The system's own upkeep.
#[tracing::instrument(skip_all)]
pub async fn prune(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM throttle WHERE window_start < $1")
        .bind(now - Duration::days(1))
        .execute(db)
        .await?
        .rows_affected())
}
