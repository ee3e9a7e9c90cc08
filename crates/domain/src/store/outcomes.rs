//! Writing attempts' outcomes, many per transaction (the worker group-commits them the
//! way ingest commits events). Every write is fenced by the attempt's id: an outcome
//! whose delivery has moved on (its lease ran out and a claim took it over, or a person
//! changed it) is late and changes nothing.
//!
//! Plain successes, the bulk of them, are written together in one statement; anything
//! that touches the destination as a whole (a failure counted by the circuit breaker, a
//! probe, a back-off, a receiver that is gone) is applied one at a time, in the order
//! the outcomes came, and so is every outcome of a destination that has one of those in
//! the batch, so breaker counts and alerts stay exact.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;
use super::alerts::{self, AlertKind};
use super::attempts::{AttemptRecord, Claimed, DestinationEffect};
use super::breaker;
use super::queue::{Alert, AlertTask};
use crate::delivery::breaker::BreakerPolicy;
use crate::delivery::{Decision, DeliveryStatus, Transition};
use crate::ids::{AttemptId, DeliveryId, DestinationId};

/// One attempt that ended, and how.
#[derive(Debug, Clone)]
pub struct Finished {
    pub claimed: Claimed,
    pub report: Report,
}

#[derive(Debug, Clone)]
pub enum Report {
    /// The request went out (or failed on its way): what came of it, and what the retry
    /// policy decided.
    Sent {
        record: AttemptRecord,
        decision: Decision,
    },
    /// Never sent: the lease could not have covered the send. The delivery is due again
    /// at once; even a routine's, since nothing was fired.
    NotSent { reason: String },
    /// Never sent because what the message needs first could not be had (the Anthropic
    /// object an enriching route renders): the attempt says why and the retry policy
    /// decides, but the destination did nothing wrong, so its breaker never hears of it.
    Unsent {
        record: AttemptRecord,
        decision: Decision,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Recorded,
    /// The delivery moved on without this attempt: nothing was written.
    Late,
}

impl Finished {
    /// A success that concerns only its own delivery: its attempt's record.
    fn plain_record(&self) -> Option<&AttemptRecord> {
        match &self.report {
            Report::Sent {
                record,
                decision: Decision::Succeeded,
            } if !self.claimed.is_probe && record.destination == DestinationEffect::None => {
                Some(record)
            }
            _ => None,
        }
    }

    fn is_plain(&self) -> bool {
        self.plain_record().is_some()
    }
}

/// Records every outcome of `finished` on the caller's transaction. Returns, for each,
/// whether it was recorded or came late.
#[tracing::instrument(skip_all, fields(count = finished.len()))]
pub async fn record(
    tx: &mut PgConnection,
    finished: &[Finished],
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, StoreError> {
    let live = if finished.iter().all(Finished::is_plain) {
        // The common batch: one statement, fenced in its own conditions.
        let all: Vec<&Finished> = finished.iter().collect();
        record_plain(tx, &all, now).await?
    } else {
        record_mixed(tx, finished, breaker, now).await?
    };
    let is_live = |f: &Finished| {
        live.contains(&(f.claimed.delivery.id.clone(), f.claimed.attempt_id.clone()))
    };
    Ok(finished
        .iter()
        .map(|f| {
            if is_live(f) {
                Recorded::Recorded
            } else {
                // For a routine, the session a late fire started is what a person
                // deciding about its unknown outcome needs: it is in the log.
                let session = match &f.report {
                    Report::Sent { record, .. } => record.claude_code_session_url.as_deref(),
                    Report::NotSent { .. } | Report::Unsent { .. } => None,
                };
                tracing::warn!(delivery = %f.claimed.delivery.id, attempt = %f.claimed.attempt_id,
                    session, "outcome arrived after the delivery moved on; not recorded");
                Recorded::Late
            }
        })
        .collect())
}

/// A batch with failures, probes, back-offs or unsent attempts: the deliveries are fenced
/// and locked first, then the runtime rows to be written, in id order; then the plain
/// successes of the other destinations go in one statement and the rest one at a time.
/// Returns the live (delivery, attempt) pairs.
async fn record_mixed(
    tx: &mut PgConnection,
    finished: &[Finished],
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<HashSet<(DeliveryId, AttemptId)>, StoreError> {
    let live = fence(tx, finished).await?;
    let is_live = |f: &Finished| {
        live.contains(&(f.claimed.delivery.id.clone(), f.claimed.attempt_id.clone()))
    };
    // A destination with any careful outcome has all of its outcomes applied in order:
    // a success between two failures resets the count between them.
    let careful_destinations: HashSet<&DestinationId> = finished
        .iter()
        .filter(|f| is_live(f) && !f.is_plain())
        .map(|f| &f.claimed.delivery.destination_id)
        .collect();
    let (plain, careful): (Vec<&Finished>, Vec<&Finished>) =
        finished.iter().filter(|f| is_live(f)).partition(|f| {
            f.is_plain() && !careful_destinations.contains(&f.claimed.delivery.destination_id)
        });
    lock_destinations(tx, &plain, &careful).await?;
    record_plain(tx, &plain, now).await?;
    for f in careful {
        record_one(tx, f, breaker, now).await?;
    }
    Ok(live)
}

/// Locks the deliveries still in flight with these attempts, in id order, and returns
/// those (delivery, attempt) pairs; the others' outcomes are late. Keyed by the attempt
/// too: a batch may hold a stale outcome and the fresh one of the same delivery.
async fn fence(
    tx: &mut PgConnection,
    finished: &[Finished],
) -> Result<HashSet<(DeliveryId, AttemptId)>, StoreError> {
    let ids: Vec<&DeliveryId> = finished.iter().map(|f| &f.claimed.delivery.id).collect();
    let attempts: Vec<&AttemptId> = finished.iter().map(|f| &f.claimed.attempt_id).collect();
    let live: Vec<(DeliveryId, AttemptId)> = sqlx::query_as(
        "SELECT d.id, d.current_attempt_id FROM deliveries d
         JOIN unnest($1::text[], $2::text[]) AS f (id, attempt_id)
           ON d.id = f.id AND d.current_attempt_id = f.attempt_id
         WHERE d.status = 'in_flight'
         ORDER BY d.id
         FOR UPDATE OF d",
    )
    .bind(ids)
    .bind(attempts)
    .fetch_all(&mut *tx)
    .await?;
    Ok(live.into_iter().collect())
}

/// Locks, in id order, the runtime rows this transaction will write: every destination
/// of a careful outcome, and those of plain successes whose count or back-off a success
/// resets. Claims lock runtime rows in the same order, so the two never deadlock.
async fn lock_destinations(
    tx: &mut PgConnection,
    plain: &[&Finished],
    careful: &[&Finished],
) -> Result<(), StoreError> {
    if careful.is_empty() && plain.is_empty() {
        return Ok(());
    }
    let destinations = |fs: &[&Finished]| -> Vec<DestinationId> {
        let mut ids: Vec<DestinationId> = fs
            .iter()
            .map(|f| f.claimed.delivery.destination_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    sqlx::query(
        "SELECT id FROM destination_runtime
         WHERE id = ANY($1)
            OR (id = ANY($2) AND (consecutive_failures <> 0 OR state = 'backing_off'))
         ORDER BY id FOR UPDATE",
    )
    .bind(destinations(careful))
    .bind(destinations(plain))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Plain successes, in one statement: the deliveries still in flight with these
/// attempts succeed, their attempts say so, and their destinations' failure counts (and
/// back-offs whose time passed) reset. Returns the (delivery, attempt) pairs written;
/// the others were late.
async fn record_plain(
    tx: &mut PgConnection,
    plain: &[&Finished],
    now: DateTime<Utc>,
) -> Result<HashSet<(DeliveryId, AttemptId)>, StoreError> {
    if plain.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(&Claimed, &AttemptRecord)> = plain
        .iter()
        .filter_map(|f| Some((&f.claimed, f.plain_record()?)))
        .collect();
    let written: Vec<(DeliveryId, AttemptId)> = sqlx::query_as(
        "WITH f AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[],
                                  $6::text[], $7::jsonb[], $8::text[], $9::text[], $13::text[])
                 AS f (id, attempt_id, duration_ms, response_status, response_excerpt, error,
                       request_headers, session_id, session_url, note)
         ), done AS (
             UPDATE deliveries d SET status = $11, last_error = NULL,
                 next_attempt_at = NULL, lease_until = NULL, updated_at = $10,
                 claude_code_session_id = coalesce(f.session_id, d.claude_code_session_id),
                 claude_code_session_url = coalesce(f.session_url, d.claude_code_session_url)
             FROM f
             WHERE d.id = f.id AND d.current_attempt_id = f.attempt_id
               AND d.status = ANY($12)
             RETURNING d.id, d.current_attempt_id, d.destination_id
         ), finished AS (
             UPDATE attempts a SET status = 'succeeded', duration_ms = f.duration_ms,
                 response_status = f.response_status, response_excerpt = f.response_excerpt,
                 error = f.error, request_headers = f.request_headers,
                 claude_code_session_id = f.session_id, claude_code_session_url = f.session_url,
                 note = f.note
             FROM f JOIN done ON done.id = f.id AND done.current_attempt_id = f.attempt_id
             WHERE a.id = f.attempt_id AND a.status = 'in_flight' AND a.id >= $14
         ), unhealthy AS (
             -- Locked in id order, as claims lock them, before they are written.
             SELECT r.id FROM destination_runtime r
             WHERE r.id IN (SELECT destination_id FROM done)
               AND (r.consecutive_failures <> 0
                    OR (r.state = 'backing_off' AND r.paused_until <= $10))
             ORDER BY r.id
             FOR UPDATE
         ), healthy AS (
             UPDATE destination_runtime r SET consecutive_failures = 0,
                 state = CASE WHEN r.state = 'backing_off' AND r.paused_until <= $10
                              THEN 'active' ELSE r.state END,
                 paused_until = CASE WHEN r.state = 'backing_off' AND r.paused_until <= $10
                                     THEN NULL ELSE r.paused_until END
             WHERE r.id IN (SELECT id FROM unhealthy)
         )
         SELECT id, current_attempt_id FROM done",
    )
    .bind(column(&rows, |(c, _)| &c.delivery.id))
    .bind(column(&rows, |(c, _)| &c.attempt_id))
    .bind(column(&rows, |(_, r)| r.duration_ms))
    .bind(column(&rows, |(_, r)| r.response_status))
    .bind(column(&rows, |(_, r)| r.response_excerpt.as_deref()))
    .bind(column(&rows, |(_, r)| r.error.as_deref()))
    .bind(column(&rows, |(_, r)| r.request_headers.as_ref()))
    .bind(column(&rows, |(_, r)| r.claude_code_session_id.as_deref()))
    .bind(column(&rows, |(_, r)| r.claude_code_session_url.as_deref()))
    .bind(now)
    .bind(Transition::Succeed.to().as_str())
    .bind(Transition::Succeed.from_names())
    .bind(column(&rows, |(_, r)| r.note.as_deref()))
    // The oldest attempt bounds the update to the partitions from its day on; matched
    // against every partition's index, each row would cost a probe per partition.
    .bind(rows.iter().map(|(c, _)| c.attempt_id.as_str()).min())
    .fetch_all(&mut *tx)
    .await?;
    Ok(written.into_iter().collect())
}

/// One field of every row, as an array parameter for `unnest`.
fn column<'a, R, T>(rows: &'a [R], field: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(field).collect()
}

/// One outcome that concerns more than its delivery, or an attempt that was not sent.
async fn record_one(
    tx: &mut PgConnection,
    finished: &Finished,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let claimed = &finished.claimed;
    let (record, decision, sent) = match &finished.report {
        Report::Sent { record, decision } => (record, decision, true),
        Report::Unsent { record, decision } => (record, decision, false),
        Report::NotSent { reason } => return release(tx, claimed, reason, now).await,
    };
    let disabling = matches!(record.destination, DestinationEffect::Disable(_));
    let succeeded = matches!(decision, Decision::Succeeded);
    // A probe whose breaker a person closed (or paused) meanwhile is an ordinary attempt;
    // one that was never sent says nothing about the destination and stays the probe.
    let probing = sent && claimed.is_probe && breaker::still_probing(tx, claimed).await?;
    let next_probe_at = if probing && !succeeded {
        Some(breaker::probe_failed(tx, claimed, breaker, now).await?)
    } else {
        None
    };
    let retry_error = || {
        record
            .error
            .clone()
            .or_else(|| record.response_status.map(|s| format!("HTTP {s}")))
    };
    let (status, error, next_at) = match decision {
        // The delivery did nothing wrong: it waits for the destination to be fixed.
        _ if disabling => (DeliveryStatus::Held, record.error.clone(), None),
        // A failed probe stays the probe, due after the longer cool-down; exhaustion
        // still wins.
        Decision::RetryAt(_) if probing => (DeliveryStatus::Pending, retry_error(), next_probe_at),
        Decision::Succeeded => (DeliveryStatus::Succeeded, None, None),
        Decision::Failed { reason } => (DeliveryStatus::Failed, Some(reason.clone()), None),
        Decision::UnknownOutcome { reason } => {
            (DeliveryStatus::UnknownOutcome, Some(reason.clone()), None)
        }
        Decision::RetryAt(at) => (DeliveryStatus::Pending, retry_error(), Some(*at)),
    };
    write(tx, claimed, record, status, error.as_deref(), next_at, now).await?;
    if !sent {
        // A probe that will not be tried again hands the probe on.
        if claimed.is_probe
            && status != DeliveryStatus::Pending
            && breaker::still_probing(tx, claimed).await?
        {
            let team = &claimed.delivery.team_id;
            breaker::next_probe(tx, team, &claimed.delivery.destination_id, now).await?;
        }
        return settled_badly(tx, claimed, status, error, now).await;
    }
    breaker::apply_effect(tx, claimed, &record.destination, breaker, now).await?;
    let backing_off = matches!(record.destination, DestinationEffect::BackOffUntil(_));
    if probing {
        if succeeded {
            breaker::probe_succeeded(tx, claimed, now).await?;
        } else if status != DeliveryStatus::Pending {
            // Settled or held: another delivery probes next time.
            let at = next_probe_at.unwrap_or(now);
            let team = &claimed.delivery.team_id;
            breaker::next_probe(tx, team, &claimed.delivery.destination_id, at).await?;
        }
    } else if succeeded {
        breaker::count_success(tx, claimed, now).await?;
    } else if !backing_off {
        // A 429 asks for patience, not a verdict on the receiver: it backs off instead.
        breaker::count_failure(tx, claimed, error.as_deref(), breaker, now).await?;
    }
    settled_badly(tx, claimed, status, error, now).await
}

/// Stores the attempt's outcome and the delivery's next state.
async fn write(
    tx: &mut PgConnection,
    claimed: &Claimed,
    record: &AttemptRecord,
    status: DeliveryStatus,
    error: Option<&str>,
    next_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE attempts SET status = $2, duration_ms = $3, response_status = $4,
             response_excerpt = $5, error = $6, request_headers = $7,
             claude_code_session_id = $8, claude_code_session_url = $9, note = $10
         WHERE id = $1 AND status = 'in_flight'",
    )
    .bind(&claimed.attempt_id)
    .bind(if status == DeliveryStatus::Succeeded {
        "succeeded"
    } else {
        "failed"
    })
    .bind(record.duration_ms)
    .bind(record.response_status)
    .bind(&record.response_excerpt)
    .bind(&record.error)
    .bind(&record.request_headers)
    .bind(&record.claude_code_session_id)
    .bind(&record.claude_code_session_url)
    .bind(&record.note)
    .execute(&mut *tx)
    .await?;
    let Some(transition) = Transition::after_send(status) else {
        return Err(StoreError::Internal(format!(
            "no move takes an answered delivery to {status}"
        )));
    };
    sqlx::query(
        "UPDATE deliveries SET status = $3, last_error = $4, next_attempt_at = $5,
             lease_until = NULL, updated_at = $6,
             claude_code_session_id = coalesce($7, claude_code_session_id),
             claude_code_session_url = coalesce($8, claude_code_session_url)
         WHERE team_id = $1 AND id = $2 AND status = ANY($9)",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.id)
    .bind(transition.to().as_str())
    .bind(error)
    .bind(next_at)
    .bind(now)
    .bind(&record.claude_code_session_id)
    .bind(&record.claude_code_session_url)
    .bind(transition.from_names())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An attempt that was never sent: it is marked lost with the reason, and its delivery
/// is due again at once, the attempt not counted against its retries.
async fn release(
    tx: &mut PgConnection,
    claimed: &Claimed,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE attempts SET status = 'lost', error = $2 WHERE id = $1")
        .bind(&claimed.attempt_id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE deliveries SET status = $4, next_attempt_at = $3, lease_until = NULL,
             series_attempts = greatest(series_attempts - 1, 0), updated_at = $3
         WHERE team_id = $1 AND id = $2 AND status = ANY($5)",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.id)
    .bind(now)
    .bind(Transition::GiveBack.to().as_str())
    .bind(Transition::GiveBack.from_names())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Raises the alert a delivery that failed for good, or ended in an unknown outcome,
/// calls for (at most one per destination an hour).
async fn settled_badly(
    tx: &mut PgConnection,
    claimed: &Claimed,
    status: DeliveryStatus,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let delivery_id = claimed.delivery.id.clone();
    let (kind, alert) = match status {
        DeliveryStatus::Failed => (
            AlertKind::DeliveryFailed,
            Alert::DeliveryFailed { delivery_id, error },
        ),
        DeliveryStatus::UnknownOutcome => (
            AlertKind::UnknownOutcome,
            Alert::UnknownOutcome { delivery_id, error },
        ),
        _ => return Ok(()),
    };
    let task = AlertTask {
        team_id: claimed.delivery.team_id.clone(),
        destination_id: Some(claimed.delivery.destination_id.clone()),
        alert,
    };
    let subject = claimed.delivery.destination_id.as_str();
    alerts::raise(tx, kind, subject, &task, now).await
}
