//! What a team's overview shows: counts over a window, delivery latency percentiles,
//! deliveries per time bucket by outcome, and the sources refusing requests.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::{SourceId, TeamId};

#[derive(Debug, Clone, Default, sqlx::FromRow)]
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
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    pub pending: i64,
    pub held: i64,
}

#[tracing::instrument(skip_all)]
pub async fn totals(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    since: DateTime<Utc>,
) -> Result<Totals, StoreError> {
    Ok(sqlx::query_as::<_, Totals>(
        "WITH first_attempts AS (
             SELECT extract(epoch FROM a.started_at - a.due_at) * 1000 + a.duration_ms AS ms
             FROM deliveries d
             JOIN attempts a ON a.delivery_id = d.id AND a.number = 1
             WHERE d.team_id = $1 AND d.created_at > $2 AND a.id >= $4 AND NOT a.replay
               AND a.status = 'succeeded' AND a.due_at IS NOT NULL
         )
         SELECT
             (SELECT count(*) FROM events
               WHERE team_id = $1 AND id >= $3 AND received_at > $2) AS events,
             count(*) FILTER (WHERE d.status = 'succeeded') AS succeeded,
             count(*) FILTER (WHERE d.status = 'failed') AS failed,
             count(*) FILTER (WHERE d.status IN ('pending', 'in_flight', 'throttled')) AS pending,
             count(*) FILTER (WHERE d.status = 'held') AS held,
             count(*) FILTER (WHERE d.status = 'unknown_outcome') AS unknown,
             count(*) FILTER (WHERE d.status = 'pending' AND d.series_attempts > 0) AS retrying,
             (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM first_attempts) AS p50_ms,
             (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) FROM first_attempts) AS p95_ms
         FROM deliveries d WHERE d.team_id = $1 AND d.created_at > $2",
    )
    .bind(team)
    .bind(since)
    // Event ids sort by when they were made: the team's id index bounds the count.
    .bind(crate::ids::EventId::first_at(
        since - super::events::ID_SLACK,
    ))
    // A first attempt is made after its delivery: older partitions hold none of them.
    .bind(crate::ids::AttemptId::first_at(
        since - super::events::ID_SLACK,
    ))
    .fetch_one(db)
    .await?)
}

/// Deliveries per bucket of `bucket_seconds` from `since`, oldest first; empty buckets
/// included.
#[tracing::instrument(skip_all)]
pub async fn buckets(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_seconds: i64,
) -> Result<Vec<Bucket>, StoreError> {
    Ok(sqlx::query_as::<_, Bucket>(
        "WITH slots AS (
             SELECT generate_series(0, (extract(epoch FROM $3 - $2)::bigint - 1) / $4) AS n
         ), counted AS (
             SELECT floor(extract(epoch FROM created_at - $2) / $4)::bigint AS n,
                    count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE status IN ('failed', 'unknown_outcome')) AS failed,
                    count(*) FILTER (WHERE status IN ('pending', 'in_flight', 'throttled')) AS pending,
                    count(*) FILTER (WHERE status = 'held') AS held
             FROM deliveries WHERE team_id = $1 AND created_at > $2 AND created_at <= $3
             GROUP BY 1
         )
         SELECT $2 + make_interval(secs => slots.n * $4) AS start,
                coalesce(c.succeeded, 0) AS succeeded, coalesce(c.failed, 0) AS failed,
                coalesce(c.pending, 0) AS pending, coalesce(c.held, 0) AS held
         FROM slots LEFT JOIN counted c ON c.n = slots.n ORDER BY slots.n",
    )
    .bind(team)
    .bind(since)
    .bind(until)
    .bind(bucket_seconds)
    .fetch_all(db)
    .await?)
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
