//! What a team's overview shows: counts over a window, delivery latency percentiles,
//! deliveries per time bucket by outcome, and the sources refusing requests.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgExecutor, PgPool};

use super::{StoreError, rollups};
use crate::ids::{SourceId, TeamId};

#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub events: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Pending, in flight or throttled: on their way.
    pub pending: i64,
    pub held: i64,
    pub unknown: i64,
    /// Pending after a failed attempt: on their way, but failing so far.
    pub retrying: i64,
    /// First attempts that succeeded: from when the delivery was due (on arrival, or
    /// when a paused destination let it go) to the receiver's answer, in milliseconds.
    /// Holds, rate-limit waits, retries and replays are not latency.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// Deliveries created in one time bucket, by outcome.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    pub pending: i64,
    pub held: i64,
}

/// The team's totals and its buckets of `bucket_seconds` (empty ones included) from
/// `since` to `until`, both whole hours, read from the hourly counts.
#[tracing::instrument(skip_all)]
pub async fn overview(
    db: &PgPool,
    team: &TeamId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_seconds: i64,
) -> Result<(Totals, Vec<Bucket>), StoreError> {
    let slots = ((until - since).num_seconds() + bucket_seconds - 1) / bucket_seconds;
    let mut buckets: Vec<Bucket> = (0..slots)
        .map(|n| Bucket {
            start: since + Duration::seconds(n * bucket_seconds),
            ..Bucket::default()
        })
        .collect();
    let mut totals = Totals::default();
    let mut latency = Vec::new();
    for h in rollups::hours(db, team, since, until).await? {
        totals.events += h.events;
        totals.succeeded += h.succeeded;
        totals.failed += h.failed;
        totals.unknown += h.unknown;
        totals.pending += h.pending;
        totals.retrying += h.retrying;
        totals.held += h.held;
        rollups::add_latency(&mut latency, &h.latency);
        let slot = (h.hour - since).num_seconds() / bucket_seconds;
        if let Some(b) = usize::try_from(slot).ok().and_then(|n| buckets.get_mut(n)) {
            b.succeeded += h.succeeded;
            b.failed += h.failed + h.unknown;
            b.pending += h.pending;
            b.held += h.held;
        }
    }
    totals.p50_ms = rollups::percentile(&latency, 0.50);
    totals.p95_ms = rollups::percentile(&latency, 0.95);
    Ok((totals, buckets))
}

/// Sources that refused requests since `since`, most first (the log keeps each source's
/// latest 100).
#[tracing::instrument(skip_all)]
pub async fn rejecting_sources(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    since: DateTime<Utc>,
) -> Result<Vec<(SourceId, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.name, count(*) AS refused
         FROM source_rejections r JOIN sources s ON s.id = r.source_id
         WHERE r.team_id = $1 AND r.received_at > $2
         GROUP BY s.id, s.name ORDER BY refused DESC, s.name",
    )
    .bind(team)
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// One side-job queue's backlog: tasks waiting, and how long the oldest due one has
/// waited.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueDepth {
    pub queue: String,
    pub pending: i64,
    pub oldest_seconds: Option<f64>,
}

/// The backlog of every side-job queue, for the metrics. System-wide: the system's own
/// upkeep.
#[tracing::instrument(skip_all)]
pub async fn queues(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<QueueDepth>, StoreError> {
    Ok(sqlx::query_as::<_, QueueDepth>(
        "SELECT job_type AS queue, count(*) AS pending,
                extract(epoch FROM $1 - min(run_at) FILTER (WHERE run_at <= $1))::float8
                    AS oldest_seconds
         FROM apalis.jobs WHERE status IN ('Pending', 'Queued') GROUP BY job_type",
    )
    .bind(now)
    .fetch_all(db)
    .await?)
}

/// Where the unsettled deliveries stand: the delivery queue's backlog.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Backlog {
    /// Due now and not yet started.
    pub due: i64,
    /// How long the oldest of those has been due, in seconds.
    pub oldest_due_seconds: Option<f64>,
    pub in_flight: i64,
    /// Waiting for a retry, a back-off or a probe's cool-down.
    pub scheduled: i64,
    /// Waiting for a destination's rate limit, concurrency or budget.
    pub throttled: i64,
    /// Waiting for a paused or disabled destination.
    pub held: i64,
}

/// The delivery queue across teams, for the metrics. The system's own upkeep. Each count
/// reads the partial index of its states, so it costs the size of the queue, not of the
/// history.
#[tracing::instrument(skip_all)]
pub async fn backlog(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Backlog, StoreError> {
    Ok(sqlx::query_as::<_, Backlog>(
        "WITH queued AS (
             SELECT status, next_attempt_at FROM deliveries
             WHERE status IN ('pending', 'throttled')
         )
         SELECT
             (SELECT count(*) FROM queued WHERE next_attempt_at <= $1) AS due,
             (SELECT extract(epoch FROM $1 - min(next_attempt_at))::float8
                FROM queued WHERE next_attempt_at <= $1) AS oldest_due_seconds,
             (SELECT count(*) FROM deliveries WHERE status = 'in_flight') AS in_flight,
             (SELECT count(*) FROM queued
               WHERE status = 'pending' AND next_attempt_at > $1) AS scheduled,
             (SELECT count(*) FROM queued
               WHERE status = 'throttled' AND next_attempt_at > $1) AS throttled,
             (SELECT count(*) FROM deliveries WHERE status = 'held') AS held",
    )
    .bind(now)
    .fetch_one(db)
    .await?)
}

/// One team's share of the delivery queue, for its overview.
#[tracing::instrument(skip_all)]
pub async fn team_backlog(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    now: DateTime<Utc>,
) -> Result<Backlog, StoreError> {
    Ok(sqlx::query_as::<_, Backlog>(
        "SELECT
             count(*) FILTER (WHERE status IN ('pending', 'throttled')
                                AND next_attempt_at <= $2) AS due,
             extract(epoch FROM $2 - min(next_attempt_at)
                 FILTER (WHERE status IN ('pending', 'throttled')
                           AND next_attempt_at <= $2))::float8 AS oldest_due_seconds,
             count(*) FILTER (WHERE status = 'in_flight') AS in_flight,
             count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > $2) AS scheduled,
             count(*) FILTER (WHERE status = 'throttled' AND next_attempt_at > $2) AS throttled,
             count(*) FILTER (WHERE status = 'held') AS held
         FROM deliveries
         WHERE team_id = $1 AND status IN ('pending', 'throttled', 'in_flight', 'held')",
    )
    .bind(team)
    .bind(now)
    .fetch_one(db)
    .await?)
}
