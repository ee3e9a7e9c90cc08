//! Retention: a team's events (their deliveries and attempts with them) are kept for its
//! `retention_days`, and the job queue's finished rows for a week. Whole days past
//! every team's retention go by dropping partitions (`partitions`); what is left is a
//! team keeping less than the longest, whose rows go here in small batches, each its
//! own statement, so no lock is held long and none that ingest waits on. The
//! maintenance job runs them once per hour across every process.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Row};

use super::StoreError;
use crate::ids::{AttemptId, DeliveryId, EventId, TeamId};

/// How long the queue keeps a finished job's row.
pub const FINISHED_JOBS_KEPT: Duration = Duration::days(7);

/// The advisory lock between replays and retention. A replay (or a re-run of an event)
/// makes an event needed again, so retention's last check that nothing needs a row and
/// its removal of the row must not have a replay between them: each replay holds this
/// lock shared for its transaction, and retention holds it alone from its check to its
/// commit. A replay that came first is seen by the check; one that comes after finds its
/// delivery, or its event, gone.
const REPLAYS: i64 = 0x5359_5245_504c_4159;

/// Lets a replay go on, waiting while retention checks and removes rows.
pub(crate) async fn replays_may_go(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(REPLAYS)
        .execute(tx)
        .await?;
    Ok(())
}

/// Holds replays back until the caller's transaction ends (waiting for those under way).
pub(crate) async fn hold_off_replays(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(REPLAYS)
        .execute(tx)
        .await?;
    Ok(())
}

/// Every team and how many days it keeps its events, at most `cap`.
#[tracing::instrument(skip_all)]
pub async fn teams(db: impl PgExecutor<'_>, cap: i32) -> Result<Vec<(TeamId, i32)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, least(retention_days, $1) FROM teams ORDER BY id")
            .bind(cap)
            .fetch_all(db)
            .await?,
    )
}

/// How long a team's batch waits for replays under way (and for its rows) before it
/// gives way to them until the next run: shorter than PostgreSQL's `deadlock_timeout`
/// (1 s), so a source's delete taking the same rows in another order makes this side
/// give way rather than be chosen, or choose the other, as a deadlock's victim.
const BATCH_LOCK_TIMEOUT: &str = "500ms";

/// Deletes up to `batch` of the team's events received before `before`, with their
/// fetched objects, deliveries and attempts, and returns how many events went. An event
/// with a delivery that has not settled stays until it has; replays wait meanwhile.
/// A batch that waits longer than [`BATCH_LOCK_TIMEOUT`] for its locks deletes nothing
/// and returns 0: the next run goes on.
#[tracing::instrument(skip_all)]
pub async fn delete_events(
    db: &PgPool,
    team: &TeamId,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, StoreError> {
    match delete_events_once(db, team, before, batch).await {
        Err(e) if super::partitions::is_lock_timeout(&e) => {
            tracing::warn!(%team, "retention of the team's old events left for the next run: its locks stayed busy");
            Ok(0)
        }
        other => Ok(other?),
    }
}

async fn delete_events_once(
    db: &PgPool,
    team: &TeamId,
    before: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    super::partitions::set_lock_timeout(&mut tx, BATCH_LOCK_TIMEOUT).await?;
    hold_off_replays(&mut tx).await?;
    // Ids sort by the time they were made, so the team's id index finds the old ones.
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT e.id FROM events e
         WHERE e.team_id = $1 AND e.id < $2 AND e.received_at < $3
           AND NOT EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.event_id = e.id
                 AND d.status IN ('pending', 'held', 'throttled', 'in_flight', 'unknown_outcome')
           )
         ORDER BY e.id LIMIT $4",
    )
    .bind(team)
    .bind(EventId::first_at(before + super::events::ID_SLACK))
    .bind(before)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let Some(oldest) = ids.first() else {
        tx.rollback().await?;
        return Ok(0);
    };
    // Deliveries and attempts are made after their event: their partitions from the
    // oldest event's time (a ULID's first 10 characters) on are the only ones to look in.
    let start = EventId::PREFIX.len() + 1;
    let made = &oldest[start..start + 10];
    let gone = sqlx::query(
        "WITH gone AS (
             DELETE FROM events WHERE team_id = $1 AND id = ANY ($2) RETURNING id
         ), objects AS (
             DELETE FROM event_objects WHERE team_id = $1 AND event_id IN (SELECT id FROM gone)
         ), deliveries_gone AS (
             DELETE FROM deliveries
             WHERE team_id = $1 AND id >= $3 AND event_id IN (SELECT id FROM gone)
             RETURNING id
         ), attempts_gone AS (
             DELETE FROM attempts
             WHERE team_id = $1 AND id >= $4 AND delivery_id IN (SELECT id FROM deliveries_gone)
         )
         SELECT count(*) FROM gone",
    )
    .bind(team)
    .bind(&ids)
    .bind(format!("{}_{made}", DeliveryId::PREFIX))
    .bind(format!("{}_{made}", AttemptId::PREFIX))
    .fetch_one(&mut *tx)
    .await?
    .get::<i64, _>(0);
    tx.commit().await?;
    Ok(u64::try_from(gone).unwrap_or(0))
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
