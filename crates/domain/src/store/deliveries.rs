//! Deliveries and attempts: the reads behind the API, and replay. The worker's writes
//! around a send are in `attempts`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::queue::notify_deliveries;
use super::{StoreError, fetch_limit, page};
use crate::delivery::{DeliveryStatus, Transition};
use crate::ids::{DeliveryId, EventId, TeamId};
use crate::model::{Attempt, Delivery, DeliveryFilter, Page, PageRequest};

macro_rules! columns {
    () => {
        "id, team_id, event_id, route_id, destination_id, status, attempt_count,
    series_attempts, replay_count, next_attempt_at, last_error,
    claude_code_session_id, claude_code_session_url, created_at, updated_at"
    };
}

/// A delivery's columns, for queries built elsewhere.
pub(super) const COLUMNS: &str = columns!();

macro_rules! attempt_columns {
    () => {
        "id, number, replay, status, started_at, duration_ms, request_headers,
    response_status, response_excerpt, error, claude_code_session_id, claude_code_session_url"
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

pub(super) async fn lock(
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

/// Sets a settled delivery `pending` again with a fresh retry series, due at once, on
/// the caller's transaction. History is kept: earlier attempts
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
        "UPDATE deliveries SET status = $4, replay_count = replay_count + 1,
             series_attempts = 0, next_attempt_at = $3,
             last_error = NULL, updated_at = $3
         WHERE team_id = $1 AND id = $2 AND status = ANY($5) RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(now)
    .bind(Transition::Replay.to().as_str())
    .bind(Transition::Replay.from_names())
    .fetch_one(&mut *tx)
    .await?;
    notify_deliveries(&mut *tx).await?;
    Ok(updated)
}
