//! Deliveries and attempts: the reads behind the API, replay, and the two writes a worker
//! makes around each send (claim before, record after).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::queue::{DeliveryTask, push_deliveries};
use super::{StoreError, fetch_limit, page};
use crate::delivery::{Decision, DeliveryStatus, DestinationKind};
use crate::ids::{AttemptId, DeliveryId, EventId, TeamId};
use crate::model::{Attempt, Delivery, DeliveryFilter, Destination, Page, PageRequest};

macro_rules! columns {
    () => {
        "id, team_id, event_id, route_id, destination_id, status, attempt_count,
    series_attempts, replay_count, task_seq, next_attempt_at, last_error, created_at, updated_at"
    };
}

macro_rules! attempt_columns {
    () => {
        "id, number, replay, status, started_at, duration_ms,
    response_status, response_excerpt, error, claude_code_session_url"
    };
}

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &DeliveryFilter,
    req: &PageRequest,
) -> Result<Page<Delivery>, StoreError> {
    let rows = sqlx::query_as::<_, Delivery>(concat!(
        "SELECT ",
        columns!(),
        " FROM deliveries
         WHERE team_id = $1 AND ($2::text IS NULL OR id < $2)
           AND ($3::text IS NULL OR status = $3)
           AND ($4::text IS NULL OR event_id = $4)
           AND ($5::text IS NULL OR route_id = $5)
           AND ($6::text IS NULL OR destination_id = $6)
           AND ($7::timestamptz IS NULL OR created_at >= $7)
           AND ($8::timestamptz IS NULL OR created_at < $8)
         ORDER BY id DESC LIMIT $9"
    ))
    .bind(team)
    .bind(&req.cursor)
    .bind(filter.status.map(DeliveryStatus::as_str))
    .bind(&filter.event_id)
    .bind(&filter.route_id)
    .bind(&filter.destination_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(fetch_limit(req))
    .fetch_all(db)
    .await?;
    Ok(page(rows, req, |d| d.id.to_string()))
}

#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DeliveryId,
) -> Result<Delivery, StoreError> {
    Ok(sqlx::query_as::<_, Delivery>(concat!(
        "SELECT ",
        columns!(),
        " FROM deliveries WHERE team_id = $1 AND id = $2"
    ))
    .bind(team)
    .bind(id)
    .fetch_one(db)
    .await?)
}

#[tracing::instrument(skip_all)]
pub async fn for_event(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    event: &EventId,
) -> Result<Vec<Delivery>, StoreError> {
    Ok(sqlx::query_as::<_, Delivery>(concat!(
        "SELECT ",
        columns!(),
        " FROM deliveries WHERE team_id = $1 AND event_id = $2 ORDER BY id"
    ))
    .bind(team)
    .bind(event)
    .fetch_all(db)
    .await?)
}

#[tracing::instrument(skip_all)]
pub async fn attempts(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    delivery: &DeliveryId,
) -> Result<Vec<Attempt>, StoreError> {
    Ok(sqlx::query_as::<_, Attempt>(concat!(
        "SELECT ",
        attempt_columns!(),
        " FROM attempts
         WHERE team_id = $1 AND delivery_id = $2 ORDER BY number"
    ))
    .bind(team)
    .bind(delivery)
    .fetch_all(db)
    .await?)
}

async fn lock(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DeliveryId,
) -> Result<Delivery, StoreError> {
    Ok(sqlx::query_as::<_, Delivery>(concat!(
        "SELECT ",
        columns!(),
        " FROM deliveries WHERE team_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(team)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?)
}

/// Sets a settled delivery `pending` again with a fresh retry series, and pushes its
/// first attempt, all on the caller's transaction. History is kept: earlier attempts
/// stay, and the new ones are marked `replay`.
#[tracing::instrument(skip_all)]
pub async fn replay(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DeliveryId,
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let current = lock(tx, team, id).await?;
    if !current.status.is_replayable() {
        return Err(StoreError::Conflict(format!(
            "delivery is {}; only succeeded, failed, unknown_outcome or cancelled deliveries can be replayed",
            current.status
        )));
    }
    let updated = sqlx::query_as::<_, Delivery>(concat!(
        "UPDATE deliveries SET status = 'pending', replay_count = replay_count + 1,
             series_attempts = 0, task_seq = task_seq + 1, next_attempt_at = $3,
             last_error = NULL, updated_at = $3
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let task = DeliveryTask {
        team_id: team.clone(),
        delivery_id: id.clone(),
        seq: updated.task_seq,
    };
    push_deliveries(tx, &[(task, None)]).await?;
    Ok(updated)
}

/// An attempt the worker has committed as `in_flight` and is about to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub destination: Destination,
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

/// Starts an attempt: checks that the task is current, marks an attempt left in flight by
/// a dead worker as `lost`, and inserts the new attempt as `in_flight`. A routine whose
/// previous fire may have gone out becomes `unknown_outcome` instead of firing again.
#[tracing::instrument(skip_all, fields(delivery = %task.delivery_id))]
pub async fn claim(
    tx: &mut PgConnection,
    task: &DeliveryTask,
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
    if !matches!(
        delivery.status,
        DeliveryStatus::Pending | DeliveryStatus::InFlight
    ) {
        return Ok(Claim::Skip("delivery already settled"));
    }
    let destination = super::destinations::get(&mut *tx, team, &delivery.destination_id).await?;
    if delivery.status == DeliveryStatus::InFlight {
        sqlx::query(
            "UPDATE attempts SET status = 'lost',
                 error = 'the worker stopped before recording an outcome'
             WHERE team_id = $1 AND delivery_id = $2 AND status = 'in_flight'",
        )
        .bind(team)
        .bind(&delivery.id)
        .execute(&mut *tx)
        .await?;
        if destination.kind == DestinationKind::Routine {
            settle(
                tx,
                team,
                &delivery.id,
                DeliveryStatus::UnknownOutcome,
                Some("a fire was in flight when its worker stopped; it may have started a session"),
                now,
            )
            .await?;
            return Ok(Claim::Skip("routine fire outcome unknown"));
        }
    }
    let attempt_id = AttemptId::generate();
    sqlx::query(
        "INSERT INTO attempts (id, team_id, delivery_id, number, replay, status, started_at)
         VALUES ($1, $2, $3, $4, $5, 'in_flight', $6)",
    )
    .bind(&attempt_id)
    .bind(team)
    .bind(&delivery.id)
    .bind(delivery.attempt_count + 1)
    .bind(delivery.replay_count > 0)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let delivery = sqlx::query_as::<_, Delivery>(concat!(
        "UPDATE deliveries SET status = 'in_flight', attempt_count = attempt_count + 1,
             series_attempts = series_attempts + 1, updated_at = $3
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(&delivery.id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let series_attempt = u32::try_from(delivery.series_attempts).unwrap_or(1);
    Ok(Claim::Send(Box::new(Claimed {
        delivery,
        destination,
        attempt_id,
        series_attempt,
    })))
}

async fn settle(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DeliveryId,
    status: DeliveryStatus,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = $3, last_error = $4, next_attempt_at = NULL, updated_at = $5
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
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

/// Records an attempt's outcome and applies the policy's decision; a retry pushes the
/// next attempt's task on the same transaction.
#[tracing::instrument(skip_all, fields(delivery = %claimed.delivery.id))]
pub async fn record(
    tx: &mut PgConnection,
    claimed: &Claimed,
    attempt: &AttemptRecord,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let team = &claimed.delivery.team_id;
    let succeeded = matches!(decision, Decision::Succeeded);
    sqlx::query(
        "UPDATE attempts SET status = $3, duration_ms = $4, response_status = $5,
             response_excerpt = $6, error = $7
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(&claimed.attempt_id)
    .bind(if succeeded { "succeeded" } else { "failed" })
    .bind(attempt.duration_ms)
    .bind(attempt.response_status)
    .bind(&attempt.response_excerpt)
    .bind(&attempt.error)
    .execute(&mut *tx)
    .await?;
    let id = &claimed.delivery.id;
    match decision {
        Decision::Succeeded => settle(tx, team, id, DeliveryStatus::Succeeded, None, now).await,
        Decision::Failed { reason } => {
            settle(tx, team, id, DeliveryStatus::Failed, Some(reason), now).await
        }
        Decision::UnknownOutcome { reason } => {
            settle(
                tx,
                team,
                id,
                DeliveryStatus::UnknownOutcome,
                Some(reason),
                now,
            )
            .await
        }
        Decision::RetryAt(at) => {
            let seq = sqlx::query_scalar::<_, i32>(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3,
                     task_seq = task_seq + 1, last_error = $4, updated_at = $5
                 WHERE team_id = $1 AND id = $2 RETURNING task_seq",
            )
            .bind(team)
            .bind(id)
            .bind(at)
            .bind(
                attempt
                    .error
                    .clone()
                    .or_else(|| attempt.response_status.map(|s| format!("HTTP {s}"))),
            )
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let task = DeliveryTask {
                team_id: team.clone(),
                delivery_id: id.clone(),
                seq,
            };
            push_deliveries(tx, &[(task, Some(*at))]).await
        }
    }
}
