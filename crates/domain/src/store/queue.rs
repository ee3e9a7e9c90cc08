//! The job queue's rows. Delivery tasks are written into apalis-postgres's table on the
//! caller's transaction, so an event and the work it causes commit together or not at
//! all (no dual write). The workers that run them live in the worker crate.

use apalis::prelude::TaskBuilder;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::StoreError;
use crate::ids::{DeliveryId, DestinationId, TeamId};

/// The queue delivery attempts run on.
pub const DELIVERIES: &str = "switchyard::deliveries";

/// The queue of alert emails to a team's admins.
pub const ALERTS: &str = "switchyard::alerts";

/// An email to the people a team's alert settings name, about one of its destinations
/// (or, for a source's rejections, none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTask {
    pub team_id: TeamId,
    #[serde(default)]
    pub destination_id: Option<DestinationId>,
    pub alert: Alert,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    /// The destination stopped taking deliveries by itself; `reason` says why.
    Disabled { reason: String },
    /// A probe went through and the held deliveries are on their way.
    Recovered { released: u32 },
    /// A delivery failed for good: every attempt spent, or an answer not worth retrying.
    DeliveryFailed {
        delivery_id: DeliveryId,
        error: Option<String>,
    },
    /// A routine fire whose answer never came: it may or may not have started a session,
    /// and it is not fired again.
    UnknownOutcome {
        delivery_id: DeliveryId,
        error: Option<String>,
    },
    /// A source refused more requests than the team's threshold within ten minutes.
    SourceRejecting {
        source_id: crate::ids::SourceId,
        count: i64,
        reason: String,
    },
}

/// Pushes an alert on the caller's transaction, so it goes out if and only if the change
/// it reports commits. apalis retries it a few times if the SMTP server refuses.
pub async fn push_alert(tx: &mut PgConnection, alert: &AlertTask) -> Result<(), StoreError> {
    let args = serde_json::to_vec(alert).map_err(|e| StoreError::Internal(e.to_string()))?;
    let task = TaskBuilder::new(args).max_attempts(5).build();
    apalis_postgres::queries::push_tasks(tx, ALERTS, vec![task]).await?;
    Ok(())
}

/// The queue of account emails: address verification, password resets, invitations.
pub const MAIL: &str = "switchyard::mail";

/// One email to one person. Its text holds a single-use link, so the text is sealed with
/// the secret key: the queue's table never holds a usable link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailTask {
    pub to: String,
    pub subject: String,
    /// The sealed plain-text body, base64.
    pub sealed_text: String,
}

/// Pushes an account email on the caller's transaction. Without SMTP no worker takes
/// the queue, so the email waits there until one is configured.
pub async fn push_mail(tx: &mut PgConnection, mail: &MailTask) -> Result<(), StoreError> {
    let args = serde_json::to_vec(mail).map_err(|e| StoreError::Internal(e.to_string()))?;
    let task = TaskBuilder::new(args).max_attempts(10).build();
    apalis_postgres::queries::push_tasks(tx, MAIL, vec![task]).await?;
    Ok(())
}

/// The queue bulk replays run on.
pub const REPLAYS: &str = "switchyard::replays";

/// One bulk replay, run a batch at a time until it is done or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayTask {
    pub team_id: TeamId,
    pub replay_id: crate::ids::ReplayId,
}

/// Pushes a bulk replay's job on the caller's transaction, with the request that made it.
pub async fn push_replay(tx: &mut PgConnection, replay: &ReplayTask) -> Result<(), StoreError> {
    let args = serde_json::to_vec(replay).map_err(|e| StoreError::Internal(e.to_string()))?;
    let task = TaskBuilder::new(args).max_attempts(25).build();
    apalis_postgres::queries::push_tasks(tx, REPLAYS, vec![task]).await?;
    Ok(())
}

/// The queue of the hourly maintenance (retention). Every process offers each hour's
/// task; the hour is also the task's idempotency key, so the queue holds it once and one
/// worker runs it, however many replicas there are.
pub const MAINTENANCE: &str = "switchyard::maintenance";

/// The maintenance of one hour (`2026-11-27T13`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceTask {
    pub slot: String,
}

impl MaintenanceTask {
    pub fn for_hour(now: DateTime<Utc>) -> MaintenanceTask {
        MaintenanceTask {
            slot: now.format("%Y-%m-%dT%H").to_string(),
        }
    }
}

/// Pushes the hour's maintenance unless some process already did. Returns whether this
/// call pushed it.
pub async fn push_maintenance(
    db: &sqlx::PgPool,
    task: &MaintenanceTask,
) -> Result<bool, StoreError> {
    push_once(db, MAINTENANCE, &format!("maintenance:{}", task.slot), task).await
}

/// The queue of the sweep each upkeep interval runs once across processes: stranded
/// deliveries get a new task, and the circuit breaker's due probes start. A queue of its
/// own, so a long retention run never holds it up.
pub const SWEEPS: &str = "switchyard::sweeps";

/// The sweep of one interval, named by its start (`2026-11-27T13:05:00.000Z`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepTask {
    pub slot: String,
}

impl SweepTask {
    /// The sweep of the interval of length `every` that `now` falls in, intervals
    /// counted from the Unix epoch so every process names the same one.
    pub fn for_interval(now: DateTime<Utc>, every: std::time::Duration) -> SweepTask {
        let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
        let start = now.timestamp_millis().div_euclid(every) * every;
        let start = DateTime::from_timestamp_millis(start).unwrap_or(now);
        SweepTask {
            slot: start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// Pushes the interval's sweep unless some process already did. Returns whether this
/// call pushed it.
pub async fn push_sweep(db: &sqlx::PgPool, task: &SweepTask) -> Result<bool, StoreError> {
    push_once(db, SWEEPS, &format!("sweep:{}", task.slot), task).await
}

/// Pushes a task under a unique idempotency key, unless one with that key is already
/// queued (the queue's unique index refuses a second).
async fn push_once(
    db: &sqlx::PgPool,
    queue: &str,
    key: &str,
    task: &impl Serialize,
) -> Result<bool, StoreError> {
    let args = serde_json::to_vec(task).map_err(|e| StoreError::Internal(e.to_string()))?;
    let job = TaskBuilder::new(args)
        .idempotency_key(key)
        .max_attempts(3)
        .build();
    let mut conn = db.acquire().await?;
    match apalis_postgres::queries::push_tasks(&mut *conn, queue, vec![job]).await {
        Ok(()) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn is_unique_violation(e: &apalis_postgres::Error) -> bool {
    e.to_string().contains("idx_jobs_idempotency_key")
}

/// One attempt of one delivery. Carries ids, never a snapshot: the worker re-reads the
/// delivery and does nothing when `seq` is no longer the delivery's `task_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTask {
    pub team_id: TeamId,
    pub delivery_id: DeliveryId,
    pub seq: i32,
}

/// Pushes one task per entry, each to run at its time, or at once for `None`.
#[tracing::instrument(skip_all, fields(count = tasks.len()))]
pub async fn push_deliveries(
    tx: &mut PgConnection,
    tasks: &[(DeliveryTask, Option<DateTime<Utc>>)],
) -> Result<(), StoreError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let built = tasks
        .iter()
        .map(|(task, at)| {
            let args = serde_json::to_vec(task).map_err(|e| StoreError::Internal(e.to_string()))?;
            // Switchyard's retry policy decides about retries; apalis runs each task once.
            let task = TaskBuilder::new(args).max_attempts(1);
            // Without a time the queue stamps `now`, which also wakes the workers at once.
            Ok(match at {
                Some(at) => task.run_at_timestamp(whole_second_not_before(*at)),
                None => task,
            }
            .build())
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    apalis_postgres::queries::push_tasks(tx, DELIVERIES, built).await?;
    Ok(())
}

/// The queue keeps whole seconds; rounding down would run a task early (a `Retry-After:
/// 1` could come back after 0.4 s), so round up.
fn whole_second_not_before(at: DateTime<Utc>) -> u64 {
    let ceil = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    u64::try_from(ceil).unwrap_or(0)
}

/// Gives deliveries stranded without a live task a fresh one: `pending` or `throttled`
/// long past their time, or `in_flight` long after any send could have ended (a worker that failed to
/// record, or a task apalis lost). Bumping `task_seq` makes any old task a no-op. The
/// system's own upkeep, so it runs across teams; each task carries its delivery's team.
#[tracing::instrument(skip_all)]
pub async fn rescue_stranded(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Result<usize, StoreError> {
    let mut tx = conn.begin().await?;
    let rescued: Vec<(TeamId, DeliveryId, i32)> = sqlx::query_as(
        "UPDATE deliveries d SET task_seq = d.task_seq + 1, updated_at = $1
         FROM (
             SELECT id FROM deliveries
             WHERE (status IN ('pending', 'throttled') AND next_attempt_at < $2)
                OR (status = 'in_flight' AND updated_at < $2)
             ORDER BY id
             LIMIT 500
             FOR UPDATE SKIP LOCKED
         ) AS stranded
         WHERE d.id = stranded.id
         RETURNING d.team_id, d.id, d.task_seq",
    )
    .bind(now)
    .bind(now - grace)
    .fetch_all(&mut *tx)
    .await?;
    let tasks: Vec<_> = rescued
        .into_iter()
        .map(|(team_id, delivery_id, seq)| {
            (
                DeliveryTask {
                    team_id,
                    delivery_id,
                    seq,
                },
                None,
            )
        })
        .collect();
    push_deliveries(&mut tx, &tasks).await?;
    tx.commit().await?;
    Ok(tasks.len())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn run_times_round_up_to_the_second() {
        let exact = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(whole_second_not_before(exact), 1_700_000_000);
        let later = Utc.timestamp_opt(1_700_000_000, 1).unwrap();
        assert_eq!(whole_second_not_before(later), 1_700_000_001);
    }

    #[test]
    fn every_process_names_the_same_sweep_slot() {
        let every = std::time::Duration::from_secs(60);
        let at = |secs, millis| Utc.timestamp_opt(secs, millis * 1_000_000u32).unwrap();
        let first = SweepTask::for_interval(at(1_700_000_040, 0), every);
        assert_eq!(first.slot, "2023-11-14T22:14:00.000Z");
        assert_eq!(
            SweepTask::for_interval(at(1_700_000_099, 999), every),
            first
        );
        assert_ne!(SweepTask::for_interval(at(1_700_000_100, 0), every), first);
        // Sub-second intervals (tests use them) still name distinct slots.
        let quick = std::time::Duration::from_millis(500);
        assert_ne!(
            SweepTask::for_interval(at(1_700_000_000, 100), quick),
            SweepTask::for_interval(at(1_700_000_000, 600), quick)
        );
    }
}
