//! The batched claim: the deliveries table is the queue, and one transaction takes a
//! batch of it. It finds the destinations with due deliveries, locks each one's oldest
//! (`FOR UPDATE SKIP LOCKED`, so claimers in other processes take others), lets the
//! destination's state and limits decide about each in due order (`plan`), and writes
//! the answers (`write`): started deliveries become `in_flight` under a lease with a new
//! attempt row, the rest wait, are held or throttled. One commit covers the batch, and
//! it comes before anything is sent, so a routine's attempt is durably `in_flight`
//! before its fire goes out.
//!
//! A delivery whose lease ran out (its worker died or stalled) is due again: an HTTP,
//! Slack or email delivery is sent again, a routine's becomes `unknown_outcome`. Leases
//! are on the database's clock, so workers' clocks need not agree.

mod coalesce;
mod plan;
mod write;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection};

use super::StoreError;
use super::attempts::Claimed;
use crate::delivery::admission::Standing;
use crate::delivery::limits::{LimitState, Limits, Window};
use crate::delivery::{DeliveryStatus, DestinationKind, DestinationState};
use crate::ids::{AttemptId, DeliveryId, DestinationId, TeamId};

/// What a claimer asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    /// Deliveries to start at most: what the claimer can start at once.
    pub limit: usize,
    /// Requests one destination may have out from this claimer at once, so one slow or
    /// busy destination never takes every slot.
    pub per_destination: usize,
    /// This claimer's requests out now, by destination.
    pub busy: &'a HashMap<DestinationId, usize>,
    /// How long a started delivery is this claimer's; past it, a claim takes it over.
    pub lease: std::time::Duration,
}

/// What one claim came to.
#[derive(Debug, Default)]
pub struct ClaimBatch {
    /// Started, in the order to send them.
    pub claimed: Vec<Claimed>,
    /// More may be due now: claim again as soon as a slot is free.
    pub more: bool,
    /// Due deliveries were left because their destination had no room in this claimer:
    /// claim again when one of its sends ends.
    pub crowded: bool,
    /// When the earliest delivery still queued falls due, if one is queued for later.
    pub next_due: Option<DateTime<Utc>>,
    /// Expired leases taken over.
    pub taken_over: usize,
}

/// Claims up to `request.limit` due deliveries in one transaction. See the module doc.
#[tracing::instrument(skip_all, fields(limit = request.limit))]
pub async fn claim(
    conn: &mut PgConnection,
    request: &ClaimRequest<'_>,
    now: DateTime<Utc>,
) -> Result<ClaimBatch, StoreError> {
    let mut tx = conn.begin().await?;
    let batch = claim_on(&mut tx, request, now).await?;
    tx.commit().await?;
    Ok(batch)
}

async fn claim_on(
    tx: &mut PgConnection,
    request: &ClaimRequest<'_>,
    now: DateTime<Utc>,
) -> Result<ClaimBatch, StoreError> {
    let (ready, later) = queued(tx, now).await?;
    let room = |d: &DestinationId| {
        request
            .per_destination
            .saturating_sub(request.busy.get(d).copied().unwrap_or(0))
    };
    let crowded = ready.iter().any(|d| room(d) == 0);
    // The destinations waiting longest, no more than the batch could serve (twice over,
    // for those that turn out busy): locking a row of every ready destination when there
    // are far more of them than slots would cost more than it starts.
    let ready: Vec<DestinationId> = ready
        .into_iter()
        .filter(|d| room(d) > 0)
        .take(request.limit.saturating_mul(2).max(1))
        .collect();
    let more_ready = ready.len() >= request.limit.saturating_mul(2).max(1);
    // Each destination's share of the batch, so the lock covers about what is started.
    let take = request
        .limit
        .div_ceil(ready.len().max(1))
        .clamp(1, request.per_destination.max(1));
    let candidates = lock_candidates(tx, &ready, take, request.limit, now).await?;
    let mut batch = ClaimBatch {
        more: more_ready,
        crowded,
        next_due: later,
        ..ClaimBatch::default()
    };
    if candidates.is_empty() {
        return Ok(batch);
    }
    let full = full_destinations(&candidates, take, request.limit);
    let locked = lock_standings(tx, &candidates).await?;
    let mut plan = plan::plan(candidates, locked, request, now);
    batch.crowded |= plan.crowded;
    // More may be due where a destination gave all that was asked and was not blocked
    // (a destination with no room or at its concurrency limit waits for a send to end).
    batch.more |= plan.starts.len() >= request.limit
        || full
            .iter()
            .any(|d| d.as_ref().is_none_or(|d| !plan.blocked.contains(d)));
    batch.next_due = earliest(batch.next_due, plan.next_due);
    batch.taken_over = plan.lost.len() + plan.unknown.len();
    write::apply(tx, &plan, now).await?;
    coalesce::settle(tx, &mut plan.starts, now).await?;
    batch.claimed = write::start(tx, &plan.starts, request.lease, now).await?;
    Ok(batch)
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether delivery `q` is free to go as far as its ordering key goes: a delivery of an
/// ordering route (`order_key` set) waits while an earlier one of its route and key (by
/// event time) is unsettled: pending, throttled, held or in flight. Only that key waits;
/// the destination's other deliveries go on. A breaker's probe never waits: the
/// destination could not recover otherwise.
const UNBLOCKED: &str = "(q.order_key IS NULL
     OR NOT EXISTS (
         SELECT 1 FROM deliveries b
         WHERE b.route_id = q.route_id AND b.order_key = q.order_key
           AND b.status IN ('pending', 'throttled', 'held', 'in_flight')
           AND (b.event_at, b.id) < (q.event_at, q.id))
     OR EXISTS (
         SELECT 1 FROM destination_runtime r
         WHERE r.id = q.destination_id AND r.probe_delivery_id = q.id))";

/// The destinations that have a delivery due now, and when the earliest of the others'
/// falls due. A loose index scan: one descent of the queue index per destination with
/// queued deliveries, however many each has queued.
async fn queued(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<(Vec<DestinationId>, Option<DateTime<Utc>>), StoreError> {
    // Deliveries an ordering key holds back are not due: a destination whose queued
    // deliveries all wait behind an earlier one of their key is not ready, and its
    // next due time is its first free delivery's.
    let sql = format!(
        "WITH RECURSIVE queued AS (
             (SELECT destination_id, next_attempt_at FROM deliveries q
              WHERE status IN ('pending', 'throttled') AND {first}
              ORDER BY destination_id, next_attempt_at, id LIMIT 1)
             UNION ALL
             SELECT next.destination_id, next.next_attempt_at FROM queued
             CROSS JOIN LATERAL (
                 SELECT destination_id, next_attempt_at FROM deliveries q
                 WHERE status IN ('pending', 'throttled')
                   AND destination_id > queued.destination_id AND {next}
                 ORDER BY destination_id, next_attempt_at, id LIMIT 1
             ) AS next
         )
         SELECT destination_id, next_attempt_at FROM queued WHERE next_attempt_at <= $1
         UNION ALL
         SELECT NULL, min(next_attempt_at) FROM queued WHERE next_attempt_at > $1",
        first = UNBLOCKED,
        next = UNBLOCKED,
    );
    let rows: Vec<(Option<DestinationId>, Option<DateTime<Utc>>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
    let mut ready = Vec::new();
    let mut later = None;
    for (destination, due) in rows {
        match destination {
            Some(destination) => ready.push((due, destination)),
            None => later = due,
        }
    }
    // The destination waiting longest goes first.
    ready.sort();
    Ok((ready.into_iter().map(|(_, d)| d).collect(), later))
}

/// A due delivery (or one whose lease ran out), locked, with its destination.
#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    id: DeliveryId,
    team_id: TeamId,
    destination_id: DestinationId,
    #[sqlx(try_from = "String")]
    status: DeliveryStatus,
    next_attempt_at: Option<DateTime<Utc>>,
    slot_at: Option<DateTime<Utc>>,
    current_attempt_id: Option<AttemptId>,
    /// In flight under a lease that ran out.
    taken_over: bool,
    #[sqlx(try_from = "String")]
    kind: DestinationKind,
    limits: Json<Limits>,
    limited: bool,
    #[sqlx(try_from = "String")]
    state: DestinationState,
    paused_until: Option<DateTime<Utc>>,
    probe_delivery_id: Option<DeliveryId>,
    probe_at: Option<DateTime<Utc>>,
}

impl Candidate {
    fn standing(&self) -> Standing {
        Standing {
            state: self.state,
            paused_until: self.paused_until,
            probe: self.probe_delivery_id.clone(),
            probe_at: self.probe_at,
        }
    }
}

/// Locks up to `take` of each ready destination's due pending deliveries and as many of
/// its due throttled ones, oldest first, and up to `limit` deliveries whose lease ran
/// out; rows another claim holds are skipped.
async fn lock_candidates(
    tx: &mut PgConnection,
    ready: &[DestinationId],
    take: usize,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, StoreError> {
    // Row locks are not allowed beside UNION, so each kind is locked in its own CTE.
    let sql = format!(
        "WITH pending AS ({}), throttled AS ({}), expired AS (
             SELECT id, team_id, destination_id, status, next_attempt_at, slot_at,
                    current_attempt_id, true AS taken_over
             FROM deliveries
             WHERE status = 'in_flight' AND lease_until < now()
             ORDER BY lease_until
             LIMIT $4
             FOR UPDATE SKIP LOCKED
         )
         SELECT c.id, c.team_id, c.destination_id, c.status, c.next_attempt_at, c.slot_at,
                c.current_attempt_id, c.taken_over, dst.kind, dst.settings AS limits, dst.limited,
                r.state, r.paused_until, r.probe_delivery_id, r.probe_at
         FROM (SELECT * FROM pending UNION ALL SELECT * FROM throttled
               UNION ALL SELECT * FROM expired) AS c
         JOIN destinations dst ON dst.team_id = c.team_id AND dst.id = c.destination_id
         JOIN destination_runtime r ON r.id = c.destination_id",
        due_with_status("pending"),
        due_with_status("throttled"),
    );
    Ok(sqlx::query_as::<_, Candidate>(sqlx::AssertSqlSafe(sql))
        .bind(ready)
        .bind(now)
        .bind(i64::try_from(take).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?)
}

/// Up to `$3` due deliveries of each destination in `$1` in one status, oldest first,
/// locked. The status is written into the query rather than bound, so the planner can
/// read it in due order from a partial index that covers it (`deliveries_queue` for
/// pending ones, `deliveries_throttled` for throttled ones); with a bound status it
/// sorts every due row of the destination.
fn due_with_status(status: &'static str) -> String {
    format!(
        "SELECT d.* FROM unnest($1::text[]) AS ready (destination_id)
         CROSS JOIN LATERAL (
             SELECT id, team_id, destination_id, status, next_attempt_at, slot_at,
                    current_attempt_id, false AS taken_over
             FROM deliveries q
             WHERE destination_id = ready.destination_id
               AND status = '{status}' AND next_attempt_at <= $2 AND {UNBLOCKED}
             ORDER BY next_attempt_at, id
             LIMIT $3
             FOR UPDATE SKIP LOCKED
         ) AS d"
    )
}

/// The destinations that gave all that was asked of them (more of theirs may be due),
/// and `None` if the expired leases did.
fn full_destinations(
    candidates: &[Candidate],
    take: usize,
    limit: usize,
) -> Vec<Option<DestinationId>> {
    let mut per_destination: HashMap<(&DestinationId, DeliveryStatus), usize> = HashMap::new();
    let mut taken_over = 0;
    for c in candidates {
        if c.taken_over {
            taken_over += 1;
        } else {
            *per_destination
                .entry((&c.destination_id, c.status))
                .or_default() += 1;
        }
    }
    let mut full: Vec<Option<DestinationId>> = per_destination
        .into_iter()
        .filter(|(_, n)| *n >= take)
        .map(|((d, _), _)| Some(d.clone()))
        .collect();
    if taken_over >= limit {
        full.push(None);
    }
    full
}

/// A destination's standing and limit state read under its row's lock.
struct Locked {
    standing: Standing,
    limits: LimitState,
}

/// Locks, in id order, the runtime rows of the destinations whose answer is not a plain
/// "send": limited ones (the claim moves their windows and rate slots) and any not
/// active (a pause, a back-off or an open breaker holds or delays deliveries, so the
/// answer must come from the state as it is once a concurrent resume has committed,
/// else a delivery could be held after its destination was resumed, with nothing left
/// to release it). An active destination's row is read without a lock: a pause that
/// commits meanwhile lets at most this batch through.
async fn lock_standings(
    tx: &mut PgConnection,
    candidates: &[Candidate],
) -> Result<HashMap<DestinationId, Locked>, StoreError> {
    let mut ids: Vec<&DestinationId> = candidates
        .iter()
        .filter(|c| c.limited || c.state != DestinationState::Active)
        .map(|c| &c.destination_id)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort();
    ids.dedup();
    #[derive(sqlx::FromRow)]
    struct Row {
        id: DestinationId,
        #[sqlx(try_from = "String")]
        state: DestinationState,
        paused_until: Option<DateTime<Utc>>,
        probe_delivery_id: Option<DeliveryId>,
        probe_at: Option<DateTime<Utc>>,
        next_slot_at: Option<DateTime<Utc>>,
        budget_hour_start: Option<DateTime<Utc>>,
        budget_hour_used: i32,
        budget_day_start: Option<DateTime<Utc>>,
        budget_day_used: i32,
    }
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, state, paused_until, probe_delivery_id, probe_at, next_slot_at,
                budget_hour_start, budget_hour_used, budget_day_start, budget_day_used
         FROM destination_runtime WHERE id = ANY($1)
         ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    // The sends in flight count for a concurrency limit; those being taken over do not,
    // their worker is gone. Counted in a statement of its own, after the lock: it sees
    // what a claim that held the lock before this one started.
    let taken_over: Vec<&DeliveryId> = candidates
        .iter()
        .filter(|c| c.taken_over)
        .map(|c| &c.id)
        .collect();
    let in_flight: HashMap<DestinationId, i64> = sqlx::query_as::<_, (DestinationId, i64)>(
        "SELECT destination_id, count(*) FROM deliveries
         WHERE destination_id = ANY($1) AND status = 'in_flight' AND NOT (id = ANY($2))
         GROUP BY destination_id",
    )
    .bind(&ids)
    .bind(&taken_over)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let locked = Locked {
                standing: Standing {
                    state: r.state,
                    paused_until: r.paused_until,
                    probe: r.probe_delivery_id,
                    probe_at: r.probe_at,
                },
                limits: LimitState {
                    next_slot_at: r.next_slot_at,
                    hour: Window {
                        start: r.budget_hour_start,
                        used: r.budget_hour_used,
                    },
                    day: Window {
                        start: r.budget_day_start,
                        used: r.budget_day_used,
                    },
                    in_flight: in_flight.get(&r.id).copied().unwrap_or(0),
                },
            };
            (r.id, locked)
        })
        .collect())
}
