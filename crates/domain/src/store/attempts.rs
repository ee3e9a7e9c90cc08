//! The worker's two writes around each send. `claim` commits the attempt as `in_flight`
//! before anything goes out; `record` stores the outcome and applies the retry policy's
//! decision. Both take the common case in a single statement (one round trip, one
//! commit) and fall back to a transaction for the rare ones.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::StoreError;
use super::deliveries::lock;
use super::queue::{DeliveryTask, push_deliveries};
use crate::delivery::{Decision, DeliveryStatus, DestinationKind};
use crate::ids::{AttemptId, DeliveryId, DestinationId, TeamId};
use crate::model::Delivery;

/// An attempt committed as `in_flight`, with what the worker needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub kind: DestinationKind,
    pub url: String,
    pub sealed_signing_secret: Vec<u8>,
    /// The event as received: headers (lower-cased names) and raw body.
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub attempt_id: AttemptId,
    /// Number within the series, for the retry policy.
    pub series_attempt: u32,
}

#[derive(Debug, Clone)]
pub enum Claim {
    Send(Box<Claimed>),
    /// Nothing to do: the task is stale or the delivery settled meanwhile.
    Skip(&'static str),
}

#[derive(sqlx::FromRow)]
struct Started {
    #[sqlx(flatten)]
    delivery: Delivery,
    #[sqlx(try_from = "String")]
    kind: DestinationKind,
    url: String,
    signing_secret: Vec<u8>,
    headers: serde_json::Value,
    body: Vec<u8>,
}

/// Starts attempt `attempt_id`: checks that the task is current and inserts the attempt
/// as `in_flight`. An attempt left in flight by a dead worker is marked `lost` first; a
/// routine whose fire may have gone out becomes `unknown_outcome` instead of firing again.
/// Idempotent: called again with the same id after an unknown commit outcome, it finds
/// its own attempt and hands it back instead of taking it for a dead worker's.
#[tracing::instrument(skip_all, fields(delivery = %task.delivery_id))]
pub async fn claim(
    conn: &mut PgConnection,
    task: &DeliveryTask,
    attempt_id: &AttemptId,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    if let Some(claimed) = start(conn, task, attempt_id, DeliveryStatus::Pending, now).await? {
        return Ok(Claim::Send(claimed));
    }
    let mut tx = conn.begin().await?;
    let claim = recover(&mut tx, task, attempt_id, now).await?;
    tx.commit().await?;
    Ok(claim)
}

/// The common case in one statement: a delivery in state `from` whose task is current
/// becomes `in_flight` with a new attempt.
async fn start(
    conn: &mut PgConnection,
    task: &DeliveryTask,
    attempt_id: &AttemptId,
    from: DeliveryStatus,
    now: DateTime<Utc>,
) -> Result<Option<Box<Claimed>>, StoreError> {
    let started = sqlx::query_as::<_, Started>(
        "WITH current AS (
             SELECT id FROM deliveries
             WHERE team_id = $1 AND id = $2 AND task_seq = $3 AND status = $4
             FOR UPDATE
         ), started AS (
             UPDATE deliveries d SET status = 'in_flight', attempt_count = d.attempt_count + 1,
                 series_attempts = d.series_attempts + 1, updated_at = $5
             FROM current WHERE d.id = current.id
             RETURNING d.*
         ), attempt AS (
             INSERT INTO attempts (id, team_id, delivery_id, number, replay, status, started_at)
             SELECT $6, team_id, id, attempt_count, replay_count > 0, 'in_flight', $5 FROM started
         )
         SELECT s.*, dst.kind, dst.url, dst.signing_secret, e.headers, e.body
         FROM started s
         JOIN destinations dst ON dst.team_id = s.team_id AND dst.id = s.destination_id
         JOIN events e ON e.team_id = s.team_id AND e.id = s.event_id",
    )
    .bind(&task.team_id)
    .bind(&task.delivery_id)
    .bind(task.seq)
    .bind(from.as_str())
    .bind(now)
    .bind(attempt_id)
    .fetch_optional(conn)
    .await?;
    Ok(started.map(|s| s.into_claimed(attempt_id)))
}

impl Started {
    fn into_claimed(self, attempt_id: &AttemptId) -> Box<Claimed> {
        let series_attempt = u32::try_from(self.delivery.series_attempts).unwrap_or(1);
        Box::new(Claimed {
            delivery: self.delivery,
            kind: self.kind,
            url: self.url,
            sealed_signing_secret: self.signing_secret,
            headers: self.headers,
            body: self.body,
            attempt_id: attempt_id.clone(),
            series_attempt,
        })
    }
}

/// The attempt this worker already started, if the delivery is in flight with it.
async fn load_own(
    tx: &mut PgConnection,
    task: &DeliveryTask,
    attempt_id: &AttemptId,
) -> Result<Option<Box<Claimed>>, StoreError> {
    let own = sqlx::query_as::<_, Started>(
        "SELECT d.*, dst.kind, dst.url, dst.signing_secret, e.headers, e.body
         FROM deliveries d
         JOIN attempts a ON a.team_id = d.team_id AND a.delivery_id = d.id
         JOIN destinations dst ON dst.team_id = d.team_id AND dst.id = d.destination_id
         JOIN events e ON e.team_id = d.team_id AND e.id = d.event_id
         WHERE d.team_id = $1 AND d.id = $2 AND a.id = $3 AND a.status = 'in_flight'",
    )
    .bind(&task.team_id)
    .bind(&task.delivery_id)
    .bind(attempt_id)
    .fetch_optional(tx)
    .await?;
    Ok(own.map(|s| s.into_claimed(attempt_id)))
}

/// Why the common case did not apply, and what to do about it.
async fn recover(
    tx: &mut PgConnection,
    task: &DeliveryTask,
    attempt_id: &AttemptId,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let team = &task.team_id;
    let delivery = match lock(tx, team, &task.delivery_id).await {
        Ok(d) => d,
        // Deleted with its destination or event: nothing to deliver.
        Err(StoreError::NotFound) => return Ok(Claim::Skip("delivery no longer exists")),
        Err(e) => return Err(e),
    };
    if delivery.task_seq != task.seq {
        return Ok(Claim::Skip("task superseded"));
    }
    match delivery.status {
        DeliveryStatus::InFlight => {
            if let Some(ours) = load_own(tx, task, attempt_id).await? {
                return Ok(Claim::Send(ours));
            }
            // The worker that sent the last attempt died before recording it.
            sqlx::query(
                "UPDATE attempts SET status = 'lost',
                     error = 'the worker stopped before recording an outcome'
                 WHERE team_id = $1 AND delivery_id = $2 AND status = 'in_flight'",
            )
            .bind(team)
            .bind(&delivery.id)
            .execute(&mut *tx)
            .await?;
            if destination_kind(tx, team, &delivery.destination_id).await?
                == DestinationKind::Routine
            {
                settle(
                    tx,
                    team,
                    &delivery,
                    DeliveryStatus::UnknownOutcome,
                    Some("a fire was in flight when its worker stopped; it may have started a session"),
                    now,
                )
                .await?;
                return Ok(Claim::Skip("routine fire outcome unknown"));
            }
        }
        DeliveryStatus::Pending => {}
        _ => return Ok(Claim::Skip("delivery already settled")),
    }
    Ok(
        match start(tx, task, attempt_id, delivery.status, now).await? {
            Some(claimed) => Claim::Send(claimed),
            None => Claim::Skip("destination or event no longer exists"),
        },
    )
}

async fn destination_kind(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
) -> Result<DestinationKind, StoreError> {
    let kind: String =
        sqlx::query_scalar("SELECT kind FROM destinations WHERE team_id = $1 AND id = $2")
            .bind(team)
            .bind(id)
            .fetch_one(tx)
            .await?;
    kind.parse().map_err(StoreError::Internal)
}

async fn settle(
    tx: &mut PgConnection,
    team: &TeamId,
    delivery: &Delivery,
    status: DeliveryStatus,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = $3, last_error = $4, next_attempt_at = NULL, updated_at = $5
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(&delivery.id)
    .bind(status.as_str())
    .bind(error)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// What one send came to, as stored on its attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// A late outcome: another worker took the delivery over (this one looked dead) or a
/// person changed it meanwhile. Its record would overwrite theirs, so it is dropped.
fn stale(claimed: &Claimed) {
    tracing::warn!(delivery = %claimed.delivery.id, attempt = %claimed.attempt_id,
        "outcome arrived after the delivery moved on; not recorded");
}

/// Records an attempt's outcome and applies the policy's decision in one statement, if
/// the delivery is still in flight with this attempt; a retry also pushes the next
/// attempt's task, on the same transaction.
#[tracing::instrument(skip_all, fields(delivery = %claimed.delivery.id))]
pub async fn record(
    conn: &mut PgConnection,
    claimed: &Claimed,
    attempt: &AttemptRecord,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (status, error, next_at) = match decision {
        Decision::Succeeded => (DeliveryStatus::Succeeded, None, None),
        Decision::Failed { reason } => (DeliveryStatus::Failed, Some(reason.clone()), None),
        Decision::UnknownOutcome { reason } => {
            (DeliveryStatus::UnknownOutcome, Some(reason.clone()), None)
        }
        Decision::RetryAt(at) => (
            DeliveryStatus::Pending,
            attempt
                .error
                .clone()
                .or_else(|| attempt.response_status.map(|s| format!("HTTP {s}"))),
            Some(*at),
        ),
    };
    let statement = sqlx::query_scalar::<_, i32>(
        "WITH finished AS (
             UPDATE attempts SET status = $3, duration_ms = $4, response_status = $5,
                 response_excerpt = $6, error = $7
             WHERE team_id = $1 AND id = $2 AND status = 'in_flight'
         )
         UPDATE deliveries SET status = $9, last_error = $10, next_attempt_at = $11,
             task_seq = task_seq + $12, updated_at = $13
         WHERE team_id = $1 AND id = $8 AND status = 'in_flight' AND task_seq = $14
         RETURNING task_seq",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.attempt_id)
    .bind(if status == DeliveryStatus::Succeeded {
        "succeeded"
    } else {
        "failed"
    })
    .bind(attempt.duration_ms)
    .bind(attempt.response_status)
    .bind(&attempt.response_excerpt)
    .bind(&attempt.error)
    .bind(&claimed.delivery.id)
    .bind(status.as_str())
    .bind(error)
    .bind(next_at)
    .bind(i32::from(next_at.is_some()))
    .bind(now)
    .bind(claimed.delivery.task_seq);
    let Some(at) = next_at else {
        if statement.fetch_optional(conn).await?.is_none() {
            stale(claimed);
        }
        return Ok(());
    };
    let mut tx = conn.begin().await?;
    let Some(seq) = statement.fetch_optional(&mut *tx).await? else {
        stale(claimed);
        return Ok(());
    };
    let task = DeliveryTask {
        team_id: claimed.delivery.team_id.clone(),
        delivery_id: claimed.delivery.id.clone(),
        seq,
    };
    push_deliveries(&mut tx, &[(task, Some(at))]).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives deliveries stranded without a live task a fresh one: `pending` long past their
/// time, or `in_flight` long after any send could have ended (a worker that failed to
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
             WHERE (status = 'pending' AND next_attempt_at < $2)
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
