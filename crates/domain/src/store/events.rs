//! Events: the ingest write (dedup, event, deliveries and their tasks in one transaction)
//! and the reads behind the API.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::queue::{DeliveryTask, push_deliveries};
use super::{StoreError, fetch_limit, page};
use crate::delivery::DeliveryStatus;
use crate::ids::{DeliveryId, EventId, TeamId};
use crate::model::{Event, EventFilter, NewEvent, Page, PageRequest};

macro_rules! columns {
    () => {
        "id, team_id, source_id, event_type, dedup_key, received_at"
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    Accepted(EventId),
    /// A live dedup row already names this event.
    Duplicate(EventId),
}

/// Writes one accepted request on the caller's transaction. A dedup row whose window has
/// passed is taken over; a live one makes this a duplicate and writes nothing else.
#[tracing::instrument(skip_all)]
pub async fn ingest(tx: &mut PgConnection, ev: &NewEvent) -> Result<Ingested, StoreError> {
    let claimed = sqlx::query_scalar::<_, EventId>(
        "INSERT INTO event_dedup (source_id, dedup_key, team_id, event_id, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (source_id, dedup_key) DO UPDATE
             SET event_id = EXCLUDED.event_id, expires_at = EXCLUDED.expires_at
             WHERE event_dedup.expires_at <= $6
         RETURNING event_id",
    )
    .bind(&ev.source_id)
    .bind(&ev.dedup_key.value)
    .bind(&ev.team_id)
    .bind(&ev.id)
    .bind(ev.dedup_until)
    .bind(ev.received_at)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        let original = sqlx::query_scalar::<_, EventId>(
            "SELECT event_id FROM event_dedup WHERE source_id = $1 AND dedup_key = $2",
        )
        .bind(&ev.source_id)
        .bind(&ev.dedup_key.value)
        .fetch_one(&mut *tx)
        .await?;
        return Ok(Ingested::Duplicate(original));
    }

    sqlx::query(
        "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&ev.id)
    .bind(&ev.team_id)
    .bind(&ev.source_id)
    .bind(&ev.event_type)
    .bind(&ev.dedup_key.value)
    .bind(&ev.headers)
    .bind(&ev.body)
    .bind(ev.received_at)
    .execute(&mut *tx)
    .await?;

    if !ev.targets.is_empty() {
        let ids: Vec<DeliveryId> = ev.targets.iter().map(|_| DeliveryId::generate()).collect();
        let (routes, destinations): (Vec<_>, Vec<_>) = ev.targets.iter().cloned().unzip();
        sqlx::query(
            "INSERT INTO deliveries (id, team_id, event_id, route_id, destination_id, status,
                                     task_seq, next_attempt_at, created_at)
             SELECT d.id, $2, $3, d.route_id, d.destination_id, $6, 1, $7, $7
             FROM unnest($1::text[], $4::text[], $5::text[]) AS d (id, route_id, destination_id)",
        )
        .bind(&ids)
        .bind(&ev.team_id)
        .bind(&ev.id)
        .bind(&routes)
        .bind(&destinations)
        .bind(DeliveryStatus::Pending.as_str())
        .bind(ev.received_at)
        .execute(&mut *tx)
        .await?;
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|delivery_id| {
                let task = DeliveryTask {
                    team_id: ev.team_id.clone(),
                    delivery_id,
                    seq: 1,
                };
                (task, ev.received_at)
            })
            .collect();
        push_deliveries(tx, &tasks).await?;
    }
    Ok(Ingested::Accepted(ev.id.clone()))
}

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &EventFilter,
    req: &PageRequest,
) -> Result<Page<Event>, StoreError> {
    let rows = sqlx::query_as::<_, Event>(concat!(
        "SELECT ",
        columns!(),
        " FROM events
         WHERE team_id = $1 AND ($2::text IS NULL OR id < $2)
           AND ($3::text IS NULL OR source_id = $3)
           AND ($4::text IS NULL OR event_type = $4)
           AND ($5::text IS NULL OR dedup_key = $5)
           AND ($6::timestamptz IS NULL OR received_at >= $6)
           AND ($7::timestamptz IS NULL OR received_at < $7)
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(team)
    .bind(&req.cursor)
    .bind(&filter.source_id)
    .bind(&filter.event_type)
    .bind(&filter.dedup_key)
    .bind(filter.since)
    .bind(filter.until)
    .bind(fetch_limit(req))
    .fetch_all(db)
    .await?;
    Ok(page(rows, req, |e| e.id.to_string()))
}

#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &EventId,
) -> Result<Event, StoreError> {
    Ok(sqlx::query_as::<_, Event>(concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE team_id = $1 AND id = $2"
    ))
    .bind(team)
    .bind(id)
    .fetch_one(db)
    .await?)
}

/// The stored request: headers as received (lower-cased names) and the raw body.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventContent {
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all)]
pub async fn content(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &EventId,
) -> Result<EventContent, StoreError> {
    Ok(sqlx::query_as::<_, EventContent>(
        "SELECT headers, body, received_at FROM events WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .fetch_one(db)
    .await?)
}
