//! Retention: a team's events (their deliveries and attempts with them) are kept for its
//! `retention_days`, and the job queue's finished rows for a week. Deletes go in small
//! batches, each its own statement, so no lock is held long; the maintenance job runs
//! them once per hour across every process.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::{EventId, TeamId};

/// How long the queue keeps a finished job's row.
pub const FINISHED_JOBS_KEPT: Duration = Duration::days(7);

/// Every team and how many days it keeps its events.
#[tracing::instrument(skip_all)]
pub async fn teams(db: impl PgExecutor<'_>) -> Result<Vec<(TeamId, i32)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, retention_days FROM teams ORDER BY id")
            .fetch_all(db)
            .await?,
    )
}

/// Deletes up to `batch` of the team's events received before `before` (their
/// deliveries and attempts go with them). Returns how many went.
#[tracing::instrument(skip_all)]
pub async fn delete_events(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, StoreError> {
    // Ids sort by the time they were made, so the team's id index finds the old ones.
    Ok(sqlx::query(
        "DELETE FROM events WHERE id IN (
             SELECT id FROM events
             WHERE team_id = $1 AND id < $2 AND received_at < $3
             ORDER BY id LIMIT $4
         )",
    )
    .bind(team)
    .bind(EventId::first_at(before + super::events::ID_SLACK))
    .bind(before)
    .bind(batch)
    .execute(db)
    .await?
    .rows_affected())
}

/// The queue the previous release pushed a task per delivery to. Its ingress may still
/// push some while an upgrade rolls out; the deliveries are due rows without them.
const PREVIOUS_DELIVERY_QUEUE: &str = "switchyard::deliveries";

/// Deletes up to `batch` finished job rows (done, failed for good or killed) older than
/// [`FINISHED_JOBS_KEPT`], and the previous release's delivery tasks.
#[tracing::instrument(skip_all)]
pub async fn delete_finished_jobs(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM apalis.jobs WHERE id IN (
             SELECT id FROM apalis.jobs
             WHERE (status IN ('Done', 'Failed', 'Killed') AND done_at < $1)
                OR job_type = $3
             LIMIT $2
         )",
    )
    .bind(now - FINISHED_JOBS_KEPT)
    .bind(batch)
    .bind(PREVIOUS_DELIVERY_QUEUE)
    .execute(db)
    .await?
    .rows_affected())
}

/// How long a worker that stopped beating stays listed in the queue's worker table (at
/// least: also until the finished job rows that name it are deleted, after a week).
pub const SILENT_WORKERS_KEPT: Duration = Duration::days(1);

/// Deletes the queue's rows for workers silent longer than [`SILENT_WORKERS_KEPT`] that
/// no job row names any more. Each restart of a worker registers a new name, so without
/// this the table would only grow.
#[tracing::instrument(skip_all)]
pub async fn delete_silent_workers(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM apalis.workers w
         WHERE w.last_seen < $1
           AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    )
    .bind(now - SILENT_WORKERS_KEPT)
    .execute(db)
    .await?
    .rows_affected())
}
