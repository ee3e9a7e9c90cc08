//! Deliveries and attempts: the reads behind the API and the log, and what a person does
//! to one (replay, retry now, cancel). The worker's writes around a send are in
//! `attempts`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};

use super::queue::notify_deliveries;
use super::{StoreError, fetch_limit, page};
use crate::delivery::{DeliveryStatus, Transition};
use crate::ids::{DeliveryId, DestinationId, EventId, TeamId};
use crate::model::{Attempt, Delivery, DeliveryFilter, DeliveryLine, Page, PageRequest};

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
    response_status, response_excerpt, error, claude_code_session_id, claude_code_session_url,
    note"
    };
}

/// The team's deliveries matching `filter`, newest first (as `listing!` reads them).
macro_rules! listing {
    () => {
        concat!(
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
               AND (NOT $10 OR series_attempts > 0)
             ORDER BY id DESC LIMIT $9"
        )
    };
}

fn bind_listing<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    team: &'q TeamId,
    filter: &'q DeliveryFilter,
    req: &'q PageRequest,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(team)
        .bind(&req.cursor)
        .bind(filter.status.map(DeliveryStatus::as_str))
        .bind(&filter.event_id)
        .bind(&filter.route_id)
        .bind(&filter.destination_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(fetch_limit(req))
        .bind(filter.retrying)
}

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &DeliveryFilter,
    req: &PageRequest,
) -> Result<Page<Delivery>, StoreError> {
    let query = sqlx::query_as::<_, Delivery>(listing!());
    let rows = bind_listing(query, team, filter, req).fetch_all(db).await?;
    Ok(page(rows, req, |d| d.id.to_string()))
}

/// [`list`] with each delivery's event type and last response status, for the log.
#[tracing::instrument(skip_all)]
pub async fn lines(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &DeliveryFilter,
    req: &PageRequest,
) -> Result<Page<DeliveryLine>, StoreError> {
    let query = sqlx::query_as::<_, DeliveryLine>(concat!(
        "SELECT l.*, e.event_type, e.test AS test_event, last.response_status FROM (",
        listing!(),
        ") l
         LEFT JOIN events e ON e.team_id = l.team_id AND e.id = l.event_id
         LEFT JOIN LATERAL (
             SELECT response_status FROM attempts a
             WHERE a.delivery_id = l.id AND a.id >= 'att_' || substr(l.id, 5, 10)
             ORDER BY a.number DESC LIMIT 1
         ) last ON true
         ORDER BY l.id DESC"
    ));
    let rows = bind_listing(query, team, filter, req).fetch_all(db).await?;
    Ok(page(rows, req, |l| l.delivery.id.to_string()))
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
async fn attempts(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    delivery: &DeliveryId,
) -> Result<Vec<Attempt>, StoreError> {
    Ok(sqlx::query_as::<_, Attempt>(concat!(
        "SELECT ",
        attempt_columns!(),
        " FROM attempts
         WHERE team_id = $1 AND delivery_id = $2
           -- Made after their delivery: the partitions of its day on.
           AND id >= 'att_' || substr($2, 5, 10)
         ORDER BY number"
    ))
    .bind(team)
    .bind(delivery)
    .fetch_all(db)
    .await?)
}

/// A delivery with its attempts, read in one snapshot: never an attempt recorded
/// with its delivery's status from before it.
#[tracing::instrument(skip_all)]
pub async fn with_attempts(
    db: &PgPool,
    team: &TeamId,
    id: &DeliveryId,
) -> Result<(Delivery, Vec<Attempt>), StoreError> {
    let mut tx = super::snapshot(db).await?;
    let delivery = get(&mut *tx, team, id).await?;
    let attempts = attempts(&mut *tx, team, id).await?;
    tx.commit().await?;
    Ok((delivery, attempts))
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
    super::retention::replays_may_go(tx).await?;
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
    super::rollups::touch(tx, team, std::slice::from_ref(id)).await?;
    notify_deliveries(&mut *tx).await?;
    Ok(updated)
}

/// Sends a delivery waiting for its next attempt now, on the caller's transaction: the
/// back-off is cut short, the retry series goes on.
#[tracing::instrument(skip_all)]
pub async fn retry_now(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DeliveryId,
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let current = lock(tx, team, id).await?;
    if !Transition::RetryNow.leaves(current.status) {
        return Err(StoreError::Conflict(format!(
            "delivery is {}; only a pending delivery can be sent now",
            current.status
        )));
    }
    let updated = sqlx::query_as::<_, Delivery>(concat!(
        "UPDATE deliveries SET status = $4, next_attempt_at = $3, updated_at = $3
         WHERE team_id = $1 AND id = $2 AND status = ANY($5) RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(now)
    .bind(Transition::RetryNow.to().as_str())
    .bind(Transition::RetryNow.from_names())
    .fetch_one(&mut *tx)
    .await?;
    notify_deliveries(&mut *tx).await?;
    Ok(updated)
}

/// Cancels those of `ids` still waiting to be sent (pending, held or throttled), on the
/// caller's transaction; one being sent, or settled, is left as it is. An open breaker
/// whose probe was cancelled gets the next waiting delivery as its probe. Returns the
/// ones cancelled.
#[tracing::instrument(skip_all)]
pub async fn cancel(
    tx: &mut PgConnection,
    team: &TeamId,
    ids: &[DeliveryId],
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryId>, StoreError> {
    let cancelled: Vec<DeliveryId> = sqlx::query_scalar(
        "UPDATE deliveries SET status = $4, next_attempt_at = NULL, slot_at = NULL,
             updated_at = $3
         WHERE team_id = $1 AND id = ANY($2) AND status = ANY($5)
         RETURNING id",
    )
    .bind(team)
    .bind(ids)
    .bind(now)
    .bind(Transition::Cancel.to().as_str())
    .bind(Transition::Cancel.from_names())
    .fetch_all(&mut *tx)
    .await?;
    let orphaned: Vec<(DestinationId, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT id, probe_at FROM destination_runtime
         WHERE team_id = $1 AND state = 'auto_disabled' AND probe_delivery_id = ANY($2)
         ORDER BY id FOR UPDATE",
    )
    .bind(team)
    .bind(&cancelled)
    .fetch_all(&mut *tx)
    .await?;
    for (destination, probe_at) in orphaned {
        super::breaker::next_probe(tx, team, &destination, probe_at.unwrap_or(now).max(now))
            .await?;
    }
    Ok(cancelled)
}

/// Whether any of `ids` goes to a destination of `kind`.
#[tracing::instrument(skip_all)]
pub async fn any_to(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    ids: &[DeliveryId],
    kind: crate::delivery::DestinationKind,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM deliveries d JOIN destinations t ON t.id = d.destination_id
             WHERE d.team_id = $1 AND d.id = ANY($2) AND t.kind = $3)",
    )
    .bind(team)
    .bind(ids)
    .bind(kind.as_str())
    .fetch_one(db)
    .await?)
}

/// For each of `ids` that waits behind an earlier delivery of its route's ordering key,
/// that delivery's event (the earliest unsettled one).
#[tracing::instrument(skip_all)]
pub async fn waiting_for(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    ids: &[&DeliveryId],
) -> Result<std::collections::HashMap<DeliveryId, crate::ids::EventId>, StoreError> {
    Ok(sqlx::query_as::<_, (DeliveryId, crate::ids::EventId)>(
        "SELECT d.id, w.event_id FROM deliveries d
         CROSS JOIN LATERAL (
             SELECT b.event_id FROM deliveries b
             WHERE b.route_id = d.route_id AND b.order_key = d.order_key
               AND b.status IN ('pending', 'throttled', 'held', 'in_flight')
               AND (b.event_at, b.id) < (d.event_at, d.id)
             ORDER BY b.event_at, b.id LIMIT 1
         ) w
         WHERE d.team_id = $1 AND d.id = ANY($2) AND d.order_key IS NOT NULL
           AND d.status IN ('pending', 'throttled')",
    )
    .bind(team)
    .bind(ids)
    .fetch_all(db)
    .await?
    .into_iter()
    .collect())
}
