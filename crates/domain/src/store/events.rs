//! Events: the ingest write (dedup, event and its deliveries in one transaction)
//! and the reads behind the API.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::queue::notify_deliveries;
use super::{StoreError, fetch_limit, page};
use crate::delivery::DeliveryStatus;
use crate::ids::{DeliveryId, EventId, SourceId, TeamId};
use crate::model::{
    DeliveryPlan, Event, EventFilter, NewEvent, Page, PageRequest, Sequence, like_pattern,
};

macro_rules! columns {
    () => {
        "id, team_id, source_id, event_type, dedup_key, received_at, duplicates, last_duplicate_at,
    test, synthesized, reconciled_by"
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    Accepted(EventId),
    /// A live dedup row already names this event.
    Duplicate(EventId),
}

/// Writes accepted requests on the caller's transaction, in a fixed number of statements
/// however many there are (group commit hands in whole batches). For each dedup key the
/// first request claims it: a dedup row whose window has passed is taken over, a live one
/// makes the request a duplicate that writes nothing else. Later requests in the batch
/// with the same key are duplicates of the first. The deliveries made are due: the
/// caller wakes the claimers once the transaction has committed
/// ([`notify_deliveries`]).
#[tracing::instrument(skip_all, fields(count = batch.len()))]
pub async fn ingest(
    tx: &mut PgConnection,
    batch: &[NewEvent],
) -> Result<Vec<Ingested>, StoreError> {
    let Some(now) = batch.iter().map(|e| e.received_at).max() else {
        return Ok(Vec::new());
    };
    // The first request of each key leads; the others follow it.
    let mut first_of: HashMap<(&SourceId, &str), usize> = HashMap::new();
    let leader: Vec<usize> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| {
            *first_of
                .entry((&e.source_id, e.dedup_key.value.as_str()))
                .or_insert(i)
        })
        .collect();
    // Keys are claimed in one order by every committer, so two batches that share keys
    // wait for each other instead of deadlocking.
    let mut leaders: Vec<&NewEvent> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| leader[*i] == *i)
        .map(|(_, e)| e)
        .collect();
    leaders.sort_by(|a, b| {
        (&a.source_id, &a.dedup_key.value).cmp(&(&b.source_id, &b.dedup_key.value))
    });

    let claimed: HashSet<EventId> = sqlx::query_scalar::<_, EventId>(
        "INSERT INTO event_dedup (source_id, dedup_key, team_id, event_id, expires_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
         ON CONFLICT (source_id, dedup_key) DO UPDATE
             SET event_id = EXCLUDED.event_id, expires_at = EXCLUDED.expires_at
             WHERE event_dedup.expires_at <= $6
         RETURNING event_id",
    )
    .bind(leaders.iter().map(|e| &e.source_id).collect::<Vec<_>>())
    .bind(
        leaders
            .iter()
            .map(|e| e.dedup_key.value.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(leaders.iter().map(|e| &e.team_id).collect::<Vec<_>>())
    .bind(leaders.iter().map(|e| &e.id).collect::<Vec<_>>())
    .bind(leaders.iter().map(|e| e.dedup_until).collect::<Vec<_>>())
    .bind(now)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    let repeats: Vec<&NewEvent> = leaders
        .iter()
        .copied()
        .filter(|e| !claimed.contains(&e.id))
        .collect();
    let originals: HashMap<(SourceId, String), EventId> = if repeats.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (SourceId, String, EventId)>(
            "SELECT d.source_id, d.dedup_key, d.event_id FROM event_dedup d
             JOIN unnest($1::text[], $2::text[]) AS k (source_id, dedup_key)
               ON d.source_id = k.source_id AND d.dedup_key = k.dedup_key",
        )
        .bind(repeats.iter().map(|e| &e.source_id).collect::<Vec<_>>())
        .bind(
            repeats
                .iter()
                .map(|e| e.dedup_key.value.as_str())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(source, key, event)| ((source, key), event))
        .collect()
    };

    let new: Vec<&NewEvent> = leaders
        .iter()
        .copied()
        .filter(|e| claimed.contains(&e.id))
        .collect();
    let reconciled = super::reconcile::note_status_changes(tx, &new).await?;
    insert_events(tx, &new, &reconciled).await?;
    let delivering: Vec<&NewEvent> = new
        .iter()
        .copied()
        .filter(|e| !reconciled.contains_key(&e.id))
        .collect();
    insert_deliveries(tx, &delivering).await?;

    let answers: Vec<Ingested> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let lead = &batch[leader[i]];
            if claimed.contains(&lead.id) {
                Ok(if leader[i] == i {
                    Ingested::Accepted(e.id.clone())
                } else {
                    Ingested::Duplicate(lead.id.clone())
                })
            } else {
                originals
                    .get(&(lead.source_id.clone(), lead.dedup_key.value.clone()))
                    .map(|original| Ingested::Duplicate(original.clone()))
                    .ok_or(StoreError::Internal(
                        "a dedup row vanished mid-transaction".to_owned(),
                    ))
            }
        })
        .collect::<Result<_, _>>()?;
    count_duplicates(tx, &answers, now).await?;
    Ok(answers)
}

/// Notes repeats on the events they repeat: one statement, only for batches that have
/// any, so the common case writes nothing more.
async fn count_duplicates(
    tx: &mut PgConnection,
    answers: &[Ingested],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut repeated: HashMap<&EventId, i32> = HashMap::new();
    for answer in answers {
        if let Ingested::Duplicate(original) = answer {
            *repeated.entry(original).or_default() += 1;
        }
    }
    if repeated.is_empty() {
        return Ok(());
    }
    // In id order, so two batches repeating the same events lock them in one order.
    let mut repeated: Vec<(&EventId, i32)> = repeated.into_iter().collect();
    repeated.sort();
    let (ids, counts): (Vec<&EventId>, Vec<i32>) = repeated.into_iter().unzip();
    sqlx::query(
        "UPDATE events SET duplicates = duplicates + r.n, last_duplicate_at = $3
         FROM unnest($1::text[], $2::int[]) AS r (id, n) WHERE events.id = r.id",
    )
    .bind(ids)
    .bind(counts)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Inserts the events; one that repeats a synthesized transition names it in
/// `reconciled_by`.
async fn insert_events(
    tx: &mut PgConnection,
    events: &[&NewEvent],
    reconciled: &HashMap<EventId, EventId>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (id, team_id, source_id, event_type, dedup_key, headers, body, received_at,
                             reconciled_by, synthesized)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::jsonb[], $7::bytea[], $8::timestamptz[], $9::text[], $10::bool[])",
    )
    .bind(events.iter().map(|e| &e.id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.team_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.source_id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.dedup_key.value.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.headers).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.body.as_slice()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.received_at).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| reconciled.get(&e.id))
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.synthesized).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A delivery to make: for this event, at this time, to this route's destination.
struct Planned<'a> {
    event: &'a EventId,
    team: &'a TeamId,
    at: DateTime<Utc>,
    plan: &'a DeliveryPlan,
}

/// One `pending` delivery per matched route of each event, due at once. The caller wakes
/// the claimers once the transaction has committed.
async fn insert_deliveries(tx: &mut PgConnection, events: &[&NewEvent]) -> Result<(), StoreError> {
    let planned: Vec<Planned<'_>> = events
        .iter()
        .flat_map(|e| {
            e.deliveries.iter().map(move |plan| Planned {
                event: &e.id,
                team: &e.team_id,
                at: e.received_at,
                plan,
            })
        })
        .collect();
    insert_planned(tx, &planned).await.map(|_| ())
}

/// Sends a stored event through routes again, as the caller matched them today: one new
/// delivery per plan, linked to the event, each due at once. Earlier
/// deliveries stay as they were. Returns how many were made.
#[tracing::instrument(skip_all)]
pub async fn rerun(
    tx: &mut PgConnection,
    team: &TeamId,
    event: &EventId,
    plans: &[DeliveryPlan],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    // Like a replay, this makes the event needed again: it waits for retention, and the
    // event must still be there once it has.
    super::retention::replays_may_go(tx).await?;
    get(&mut *tx, team, event).await?;
    // A person asked for these: they are due at once and never coalesced away (they
    // still wait their turn behind an earlier delivery of their ordering key).
    let plans: Vec<DeliveryPlan> = plans
        .iter()
        .map(|plan| {
            let mut plan = plan.clone();
            plan.sequence.coalesce_key = None;
            plan.sequence.delay_ms = 0;
            plan
        })
        .collect();
    let planned: Vec<Planned<'_>> = plans
        .iter()
        .map(|plan| Planned {
            event,
            team,
            at: now,
            plan,
        })
        .collect();
    let (made, due) = insert_planned(tx, &planned).await?;
    if due > 0 {
        notify_deliveries(&mut *tx).await?;
    }
    Ok(made)
}

/// One field of every plan's sequence, as an array parameter.
fn column<'a, T>(planned: &'a [Planned<'_>], field: impl Fn(&'a Sequence) -> T) -> Vec<T> {
    planned.iter().map(|p| field(&p.plan.sequence)).collect()
}

/// Returns how many deliveries were made, and how many of them are due.
async fn insert_planned(
    tx: &mut PgConnection,
    planned: &[Planned<'_>],
) -> Result<(usize, usize), StoreError> {
    if planned.is_empty() {
        return Ok((0, 0));
    }
    let ids: Vec<DeliveryId> = planned.iter().map(|_| DeliveryId::generate()).collect();
    // Joined with routes and destinations: one deleted since the source was cached is
    // skipped rather than failing the batch.
    // A delivery whose route could not judge the event (a failing filter, a broken route)
    // is made `failed`, with the reason, and is never due: the owner sees it instead of
    // the event vanishing.
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO deliveries (id, team_id, event_id, route_id, destination_id, status,
                                 last_error, next_attempt_at, created_at, order_key,
                                 coalesce_key, event_at)
         SELECT d.id, d.team_id, d.event_id, d.route_id, d.destination_id,
                CASE WHEN d.failure IS NULL THEN 'pending' ELSE 'failed' END, d.failure,
                CASE WHEN d.failure IS NULL
                     THEN d.at + d.delay_ms * interval '1 millisecond' END,
                d.at, d.order_key, d.coalesce_key, d.event_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::text[], $8::text[], $9::text[],
                     $10::timestamptz[], $11::int[])
              AS d (id, team_id, event_id, route_id, destination_id, at, failure, order_key,
                    coalesce_key, event_at, delay_ms)
         JOIN routes r ON r.team_id = d.team_id AND r.id = d.route_id
         JOIN destinations dst ON dst.team_id = d.team_id AND dst.id = d.destination_id
         RETURNING status",
    )
    .bind(&ids)
    .bind(planned.iter().map(|p| p.team).collect::<Vec<_>>())
    .bind(planned.iter().map(|p| p.event).collect::<Vec<_>>())
    .bind(planned.iter().map(|p| &p.plan.route_id).collect::<Vec<_>>())
    .bind(
        planned
            .iter()
            .map(|p| &p.plan.destination_id)
            .collect::<Vec<_>>(),
    )
    .bind(planned.iter().map(|p| p.at).collect::<Vec<_>>())
    .bind(
        planned
            .iter()
            .map(|p| p.plan.failure.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(column(planned, |s| s.order_key.as_deref()))
    .bind(column(planned, |s| s.coalesce_key.as_deref()))
    .bind(column(planned, |s| s.event_at))
    .bind(column(planned, |s| {
        i32::try_from(s.delay_ms).unwrap_or(i32::MAX)
    }))
    .fetch_all(&mut *tx)
    .await?;
    let due = inserted
        .iter()
        .filter(|status| *status == DeliveryStatus::Pending.as_str())
        .count();
    Ok((inserted.len(), due))
}

/// How far an event's id time may be from its `received_at`: a time bound widened by it
/// is also a bound on ids, which the team's id index serves.
pub(super) const ID_SLACK: chrono::Duration = chrono::Duration::minutes(1);

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &EventFilter,
    req: &PageRequest,
) -> Result<Page<Event>, StoreError> {
    let rows = select(
        db,
        team,
        filter,
        req.cursor.as_deref(),
        fetch_limit(req),
        None,
    )
    .await?;
    let events = rows.into_iter().map(|row| row.event).collect();
    Ok(page(events, req, |e| e.id.to_string()))
}

/// An event with its stored headers and its body (`None`: too large to read here).
pub type Carried = (Event, serde_json::Value, Option<Vec<u8>>);

/// Up to `limit` events older than `before`, newest first, with what they carried:
/// their stored headers and raw bodies, for a search that reads them. A body longer
/// than `max_body` bytes is left unread (`None`).
#[tracing::instrument(skip_all)]
pub async fn list_with_bodies(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &EventFilter,
    before: Option<&str>,
    limit: i64,
    max_body: i32,
) -> Result<Vec<Carried>, StoreError> {
    let rows = select(db, team, filter, before, limit, Some(max_body)).await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.event, row.headers.unwrap_or_default(), row.body))
        .collect())
}

#[derive(sqlx::FromRow)]
struct Listed {
    #[sqlx(flatten)]
    event: Event,
    headers: Option<serde_json::Value>,
    body: Option<Vec<u8>>,
}

/// The team's events matching `filter`, older than `before`, newest first; with their
/// headers and the bodies no longer than `carrying`, when it is given.
async fn select(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &EventFilter,
    before: Option<&str>,
    limit: i64,
    carrying: Option<i32>,
) -> Result<Vec<Listed>, StoreError> {
    Ok(sqlx::query_as::<_, Listed>(concat!(
        "SELECT ",
        columns!(),
        ", CASE WHEN $11 IS NOT NULL THEN headers END AS headers,
         CASE WHEN length(body) <= $11 THEN body END AS body
         FROM events
         WHERE team_id = $1 AND ($2::text IS NULL OR id < $2)
           AND ($3::text IS NULL OR source_id = $3)
           AND ($4::text IS NULL OR event_type = $4)
           AND ($5::text IS NULL OR dedup_key = $5)
           AND ($6::timestamptz IS NULL OR received_at >= $6)
           AND ($7::timestamptz IS NULL OR received_at < $7)
           AND ($9::text IS NULL OR event_type LIKE $9)
           AND ($10::text IS NULL OR EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.status = $10))
           AND ($12::text IS NULL OR id >= $12) AND ($13::text IS NULL OR id < $13)
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(team)
    .bind(before)
    .bind(&filter.source_id)
    .bind(&filter.event_type)
    .bind(&filter.dedup_key)
    .bind(filter.since)
    .bind(filter.until)
    .bind(limit)
    .bind(filter.event_type_glob.as_deref().map(like_pattern))
    .bind(filter.delivery_status.map(|s| s.as_str()))
    .bind(carrying)
    // Ids are made as events arrive, so the time range also bounds them (with a minute's
    // slack): the team's id index then serves a range anywhere in its history.
    .bind(filter.since.map(|t| EventId::first_at(t - ID_SLACK)))
    .bind(filter.until.map(|t| EventId::first_at(t + ID_SLACK)))
    .fetch_all(db)
    .await?)
}

/// Marks an event as a person's test: the logs show it so.
#[tracing::instrument(skip_all)]
pub async fn mark_test(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &EventId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE events SET test = true WHERE team_id = $1 AND id = $2")
        .bind(team)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
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

/// An event with what it carried: its stored headers and its raw body.
#[tracing::instrument(skip_all)]
pub async fn get_with_body(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &EventId,
) -> Result<(Event, serde_json::Value, Vec<u8>), StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        event: Event,
        headers: serde_json::Value,
        body: Vec<u8>,
    }
    let row = sqlx::query_as::<_, Row>(concat!(
        "SELECT ",
        columns!(),
        ", headers, body FROM events WHERE team_id = $1 AND id = $2"
    ))
    .bind(team)
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok((row.event, row.headers, row.body))
}

/// Dedup rows [`prune_dedup`] deletes per statement.
pub const PRUNE_BATCH: u64 = 5000;

/// Deletes up to [`PRUNE_BATCH`] dedup rows whose window has passed, across teams (the
/// hourly maintenance calls it until none are left). Returns how many went.
#[tracing::instrument(skip_all)]
pub async fn prune_dedup(
    db: impl PgExecutor<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM event_dedup WHERE ctid IN (
             SELECT ctid FROM event_dedup WHERE expires_at < $1 LIMIT $2
         )",
    )
    .bind(now)
    .bind(PRUNE_BATCH as i64)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The team's latest events since `since` whose type starts with `prefix`, with their
/// bodies, for views that read inside them (the Anthropic session timeline). Newest
/// first.
#[tracing::instrument(skip_all)]
pub async fn latest_with_bodies(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    prefix: &str,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Event, Vec<u8>)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        event: Event,
        body: Vec<u8>,
    }
    let rows = sqlx::query_as::<_, Row>(concat!(
        "SELECT ",
        columns!(),
        ", body FROM events WHERE team_id = $1 AND event_type LIKE $2 AND id >= $4
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(team)
    .bind(format!("{}%", like_pattern(prefix)))
    .bind(limit)
    .bind(EventId::first_at(since))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.event, r.body)).collect())
}
