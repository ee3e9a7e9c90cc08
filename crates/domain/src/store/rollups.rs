//! The overview's counts by the hour. Upkeep counts each team's hours into
//! `hourly_counts` up to a minute ago, every minute (the current hour as far as it has
//! gone); the overview reads those rows and counts only the minutes since by reading
//! deliveries, so a week at a million deliveries a day costs 168 rows and a minute or two.
//!
//! An hour's deliveries keep moving after it is counted: those still on their way
//! (pending, in flight, throttled, held) settle later, and a replay re-opens settled
//! ones. The first keep their hour in the next count until none is left; a replay marks
//! its hours stale ([`touch`]), and the next count takes them again.

use chrono::{DateTime, Duration, DurationRound, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};

use super::StoreError;
use crate::ids::{AttemptId, DeliveryId, EventId, TeamId};

/// Upper bounds, in milliseconds, of the first-attempt latency buckets each hour keeps;
/// the last bucket holds everything slower.
pub const LATENCY_BOUNDS_MS: [f64; 28] = [
    1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 500.0,
    700.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0, 7000.0, 10000.0, 15000.0, 20000.0, 30000.0,
    60000.0,
];

/// Counts reach up to this long ago, so deliveries made before then have committed.
const SETTLE: Duration = Duration::minutes(1);

/// At most this many hours are counted for the first time in one run (an upgraded
/// database catches up on its last week a day at a time).
const NEW_HOURS_PER_RUN: i64 = 24;

/// At most this many hours with deliveries on their way are counted again in one run,
/// the latest first.
const UNSETTLED_PER_RUN: i64 = 48;

/// At most this many hours re-opened by replays are counted again in one run.
const STALE_PER_RUN: i64 = 500;

/// How long hourly counts are kept: the overview's longest window, and a day.
pub const KEPT: Duration = Duration::days(8);

/// The key of the advisory lock that lets one process count at a time.
const LOCK: i64 = 0x5359_524f_4c4c_5550;

/// One team's hour: events received, and deliveries created, by where they stand.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Hour {
    pub hour: DateTime<Utc>,
    pub events: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub unknown: i64,
    /// Pending, in flight or throttled: on their way.
    pub pending: i64,
    /// Pending after a failed attempt: on their way, but failing so far.
    pub retrying: i64,
    pub held: i64,
    /// First attempts that succeeded, by bucket of [`LATENCY_BOUNDS_MS`]: from when the
    /// delivery was due to the receiver's answer.
    pub latency: Vec<i64>,
}

/// The team's hours from `since` to `until` (whole hours), oldest first, hours with
/// nothing left out: what is counted as counted, the rest counted now (the hour the
/// counts reach into comes twice: its counted part, then the rest). One snapshot, so a
/// count committing meanwhile is neither missed nor taken twice.
#[tracing::instrument(skip_all)]
pub async fn hours(
    db: &PgPool,
    team: &TeamId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Hour>, StoreError> {
    let mut tx = super::snapshot(db).await?;
    let counted_until: DateTime<Utc> =
        sqlx::query_scalar("SELECT counted_until FROM hourly_counts_until")
            .fetch_one(&mut *tx)
            .await?;
    let mut hours: Vec<Hour> = sqlx::query_as(
        "SELECT hour, events, succeeded, failed, unknown, pending, retrying, held, latency
         FROM hourly_counts
         WHERE team_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
    )
    .bind(team)
    .bind(since)
    .bind(until.min(counted_until))
    .fetch_all(&mut *tx)
    .await?;
    let rest = since.max(counted_until);
    if rest < until {
        hours.extend(count(&mut tx, team, rest, until).await?);
    }
    tx.commit().await?;
    Ok(hours)
}

/// Counts the team's hours from `from` to `to` by reading its events, deliveries and
/// first attempts.
async fn count(
    db: &mut PgConnection,
    team: &TeamId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Hour>, StoreError> {
    let mut hours: Vec<Hour> = sqlx::query_as(
        "WITH d AS (
             SELECT date_trunc('hour', created_at, 'UTC') AS hour,
                    count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    count(*) FILTER (WHERE status = 'unknown_outcome') AS unknown,
                    count(*) FILTER (WHERE status IN ('pending', 'in_flight', 'throttled'))
                        AS pending,
                    count(*) FILTER (WHERE status = 'pending' AND series_attempts > 0)
                        AS retrying,
                    count(*) FILTER (WHERE status = 'held') AS held
             FROM deliveries WHERE team_id = $1 AND created_at >= $2 AND created_at < $3
             GROUP BY 1
         ), e AS (
             SELECT date_trunc('hour', received_at, 'UTC') AS hour, count(*) AS events
             FROM events
             WHERE team_id = $1 AND id >= $4 AND id < $5
               AND received_at >= $2 AND received_at < $3
             GROUP BY 1
         )
         SELECT hour, coalesce(e.events, 0) AS events, coalesce(d.succeeded, 0) AS succeeded,
                coalesce(d.failed, 0) AS failed, coalesce(d.unknown, 0) AS unknown,
                coalesce(d.pending, 0) AS pending, coalesce(d.retrying, 0) AS retrying,
                coalesce(d.held, 0) AS held, '{}'::bigint[] AS latency
         FROM d FULL JOIN e USING (hour) ORDER BY hour",
    )
    .bind(team)
    .bind(from)
    .bind(to)
    // Ids sort by when they were made: the team's id index bounds the events read.
    .bind(EventId::first_at(from - super::events::ID_SLACK))
    .bind(EventId::first_at(to + super::events::ID_SLACK))
    .fetch_all(&mut *db)
    .await?;
    let buckets: Vec<(DateTime<Utc>, i32, i64)> = sqlx::query_as(
        "SELECT date_trunc('hour', d.created_at, 'UTC'),
                width_bucket(extract(epoch FROM a.started_at - a.due_at) * 1000
                             + a.duration_ms, $4::float8[]),
                count(*)
         FROM deliveries d
         JOIN attempts a ON a.delivery_id = d.id AND a.number = 1
         WHERE d.team_id = $1 AND d.created_at >= $2 AND d.created_at < $3
           AND a.id >= $5 AND NOT a.replay AND a.status = 'succeeded'
           AND a.due_at IS NOT NULL
         GROUP BY 1, 2",
    )
    .bind(team)
    .bind(from)
    .bind(to)
    .bind(&LATENCY_BOUNDS_MS[..])
    // A first attempt is made after its delivery: older partitions hold none of them.
    .bind(AttemptId::first_at(from - super::events::ID_SLACK))
    .fetch_all(db)
    .await?;
    for (at, bucket, n) in buckets {
        if let Some(hour) = hours.iter_mut().find(|h| h.hour == at) {
            if hour.latency.is_empty() {
                hour.latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
            }
            hour.latency[bucket as usize] += n;
        }
    }
    Ok(hours)
}

/// The latency below which `q` (0 to 1) of the first attempts counted in `histogram`
/// (buckets of [`LATENCY_BOUNDS_MS`]) answered, in milliseconds, interpolated within
/// its bucket.
pub fn percentile(histogram: &[i64], q: f64) -> Option<f64> {
    let total: i64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0.0;
    for (i, &n) in histogram.iter().enumerate() {
        let n = n as f64;
        if n > 0.0 && below + n >= rank {
            let lower = if i == 0 {
                0.0
            } else {
                LATENCY_BOUNDS_MS[i - 1]
            };
            let Some(&upper) = LATENCY_BOUNDS_MS.get(i) else {
                return Some(lower);
            };
            return Some(lower + (upper - lower) * ((rank - below) / n).clamp(0.0, 1.0));
        }
        below += n;
    }
    None
}

/// Adds `from` into `into`, bucket by bucket.
pub fn add_latency(into: &mut Vec<i64>, from: &[i64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (sum, n) in into.iter_mut().zip(from) {
        *sum += n;
    }
}

/// Marks the hours of the team's deliveries `ids` stale, on the caller's transaction,
/// for a change the counts cannot see coming (a replay re-opening settled deliveries).
#[tracing::instrument(skip_all)]
pub async fn touch(
    tx: &mut PgConnection,
    team: &TeamId,
    ids: &[DeliveryId],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hourly_counts (team_id, hour, stale)
         SELECT DISTINCT team_id, date_trunc('hour', created_at, 'UTC'), true
         FROM deliveries WHERE team_id = $1 AND id = ANY($2)
         ORDER BY 2
         ON CONFLICT (team_id, hour) DO UPDATE SET stale = true",
    )
    .bind(team)
    .bind(ids)
    .execute(tx)
    .await?;
    Ok(())
}

/// What a run counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// A team's hours counted up to the present: the hour the last run reached into and
    /// those since.
    pub hours: i64,
    /// A team's earlier hour counted again: still settling, or re-opened.
    pub recounted: usize,
    /// Everything before this is counted (`None`: another process was counting).
    pub until: Option<DateTime<Utc>>,
}

/// Counts what has changed, unless another process is counting: the hours re-opened by
/// a replay, those still settling, and everything since the last run (from the start
/// of the hour it reached into, so that hour's late commits are counted too).
#[tracing::instrument(skip_all)]
pub async fn refresh(pool: &PgPool, now: DateTime<Utc>) -> Result<Counted, StoreError> {
    let mut tx = pool.begin().await?;
    let counting: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !counting {
        return Ok(Counted::default());
    }
    let counted_until: DateTime<Utc> =
        sqlx::query_scalar("SELECT counted_until FROM hourly_counts_until")
            .fetch_one(&mut *tx)
            .await?;
    // The hour the counts reach into is counted again below, with everything since.
    let from = counted_until
        .duration_trunc(Duration::hours(1))
        .unwrap_or(counted_until);
    // Clearing the flag holds its row until this commits: a replay marking the hour
    // again meanwhile waits, and marks it for the next run.
    let mut again: Vec<(TeamId, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE hourly_counts SET stale = false
         WHERE (team_id, hour) IN (
             SELECT team_id, hour FROM hourly_counts WHERE stale AND hour < $1
             ORDER BY hour LIMIT $2 FOR UPDATE)
         RETURNING team_id, hour",
    )
    .bind(from)
    .bind(STALE_PER_RUN)
    .fetch_all(&mut *tx)
    .await?;
    again.extend(
        sqlx::query_as::<_, (TeamId, DateTime<Utc>)>(
            "SELECT team_id, hour FROM hourly_counts
             WHERE (pending > 0 OR held > 0) AND hour < $1
             ORDER BY hour DESC LIMIT $2",
        )
        .bind(from)
        .bind(UNSETTLED_PER_RUN)
        .fetch_all(&mut *tx)
        .await?,
    );
    again.sort();
    again.dedup();
    for (team, hour) in &again {
        let counted = count(&mut tx, team, *hour, *hour + Duration::hours(1)).await?;
        let counted = counted.into_iter().next().unwrap_or(Hour {
            hour: *hour,
            ..Hour::default()
        });
        save(&mut tx, team, &counted).await?;
    }

    let to = (now - SETTLE).min(from + Duration::hours(NEW_HOURS_PER_RUN));
    let mut hours = 0;
    if to > counted_until {
        let teams: Vec<TeamId> = sqlx::query_scalar(
            "SELECT team_id FROM events WHERE id >= $1 AND id < $2
             UNION
             SELECT team_id FROM deliveries WHERE id >= $3 AND id < $4",
        )
        .bind(EventId::first_at(from - super::events::ID_SLACK))
        .bind(EventId::first_at(to + super::events::ID_SLACK))
        .bind(DeliveryId::first_at(from - super::events::ID_SLACK))
        .bind(DeliveryId::first_at(to + super::events::ID_SLACK))
        .fetch_all(&mut *tx)
        .await?;
        for team in &teams {
            for hour in count(&mut tx, team, from, to).await? {
                save(&mut tx, team, &hour).await?;
                hours += 1;
            }
        }
        sqlx::query("UPDATE hourly_counts_until SET counted_until = $1")
            .bind(to)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Counted {
        hours,
        recounted: again.len(),
        until: Some(to.max(counted_until)),
    })
}

/// Writes one team's hour as counted; a stale mark made meanwhile stays.
async fn save(tx: &mut PgConnection, team: &TeamId, hour: &Hour) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hourly_counts (team_id, hour, events, succeeded, failed, unknown,
                                    pending, retrying, held, latency)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (team_id, hour) DO UPDATE SET
             events = EXCLUDED.events, succeeded = EXCLUDED.succeeded,
             failed = EXCLUDED.failed, unknown = EXCLUDED.unknown,
             pending = EXCLUDED.pending, retrying = EXCLUDED.retrying,
             held = EXCLUDED.held, latency = EXCLUDED.latency",
    )
    .bind(team)
    .bind(hour.hour)
    .bind(hour.events)
    .bind(hour.succeeded)
    .bind(hour.failed)
    .bind(hour.unknown)
    .bind(hour.pending)
    .bind(hour.retrying)
    .bind(hour.held)
    .bind(&hour.latency)
    .execute(tx)
    .await?;
    Ok(())
}

/// Forgets hours older than `before`.
#[tracing::instrument(skip_all)]
pub async fn prune(db: impl PgExecutor<'_>, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM hourly_counts WHERE hour < $1")
        .bind(before)
        .execute(db)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_a_bucket() {
        let mut histogram = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        // Ten answers between 100 and 150 ms (bucket 12), ten in the slowest bucket.
        histogram[12] = 10;
        histogram[LATENCY_BOUNDS_MS.len()] = 10;
        assert_eq!(percentile(&histogram, 0.25), Some(125.0));
        assert_eq!(percentile(&histogram, 0.5), Some(150.0));
        assert_eq!(percentile(&histogram, 0.95), Some(60000.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[0, 0], 0.5), None);
    }

    #[test]
    fn histograms_add_bucket_by_bucket() {
        let mut sum = Vec::new();
        add_latency(&mut sum, &[1, 2, 3]);
        add_latency(&mut sum, &[1, 0, 1]);
        assert_eq!(sum, vec![2, 2, 4]);
    }
}
