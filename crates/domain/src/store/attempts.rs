//! The worker's two writes around each send. `claim` commits the attempt as `in_flight`
//! before anything goes out; `record` stores the outcome and applies the retry policy's
//! decision. Both take the common case in a single statement (one round trip, one
//! commit) and fall back to a transaction for the rare ones.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::StoreError;
use super::alerts::{self, AlertKind};
use super::breaker;
use super::deliveries::lock;
use super::limits;
use super::queue::{Alert, AlertTask, DeliveryTask, push_deliveries};
use crate::delivery::breaker::BreakerPolicy;
use crate::delivery::{Decision, DeliveryStatus, DestinationKind, DestinationState};
use crate::ids::{AttemptId, DeliveryId, DestinationId, TeamId};
use crate::model::{Delivery, DestinationSettings};

/// An attempt committed as `in_flight`, with what the worker needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub kind: DestinationKind,
    pub url: Option<String>,
    pub settings: DestinationSettings,
    pub sealed_signing_secret: Vec<u8>,
    /// The secret being rotated out, while it still signs beside the new one.
    pub sealed_previous_signing_secret: Option<Vec<u8>>,
    /// The destination's [`Credentials`](crate::model::Credentials), sealed.
    pub sealed_credentials: Option<Vec<u8>>,
    /// The event as received: headers (lower-cased names) and raw body.
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    pub dedup_key: String,
    pub source_name: String,
    pub source_provider: String,
    pub team_slug: String,
    /// The route's template and email subject (none: the kind's default, or the route
    /// is gone).
    pub template: Option<String>,
    pub subject: Option<String>,
    /// The breaker is open and this delivery is its probe.
    pub is_probe: bool,
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
    url: Option<String>,
    settings: sqlx::types::Json<DestinationSettings>,
    signing_secret: Vec<u8>,
    sealed_credentials: Option<Vec<u8>>,
    previous_signing_secret: Option<Vec<u8>>,
    probe_delivery_id: Option<DeliveryId>,
    headers: serde_json::Value,
    body: Vec<u8>,
    event_type: Option<String>,
    received_at: DateTime<Utc>,
    dedup_key: String,
    source_name: String,
    source_provider: String,
    team_slug: String,
    route_template: Option<String>,
    route_subject: Option<String>,
}

/// What a claim reads besides the delivery: its destination, its event and the event's
/// source, joined on the delivery row `s` (aliases `dst`, `e`, `src`).
macro_rules! claimed_columns {
    () => {
        "dst.kind, dst.url, dst.settings, dst.signing_secret, dst.sealed_credentials,
         CASE WHEN dst.previous_signing_until > now() THEN dst.previous_signing_secret END
             AS previous_signing_secret,
         dst.probe_delivery_id, e.headers, e.body,
         e.event_type, e.received_at, e.dedup_key, src.name AS source_name,
         src.provider AS source_provider, t.slug AS team_slug,
         r.template AS route_template, r.subject AS route_subject"
    };
}
macro_rules! claimed_joins {
    ($delivery:literal) => {
        concat!(
            " JOIN destinations dst ON dst.team_id = ",
            $delivery,
            ".team_id AND dst.id = ",
            $delivery,
            ".destination_id",
            " JOIN events e ON e.team_id = ",
            $delivery,
            ".team_id AND e.id = ",
            $delivery,
            ".event_id",
            " JOIN sources src ON src.team_id = e.team_id AND src.id = e.source_id",
            " JOIN teams t ON t.id = ",
            $delivery,
            ".team_id",
            " LEFT JOIN routes r ON r.team_id = ",
            $delivery,
            ".team_id AND r.id = ",
            $delivery,
            ".route_id"
        )
    };
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
    if let Some(claimed) =
        start(conn, task, attempt_id, DeliveryStatus::Pending, now, false).await?
    {
        return Ok(Claim::Send(claimed));
    }
    let mut tx = conn.begin().await?;
    let claim = recover(&mut tx, task, attempt_id, now).await?;
    tx.commit().await?;
    Ok(claim)
}

/// The common case in one statement: a delivery in state `from` whose task is current
/// and whose destination is taking deliveries becomes `in_flight` with a new attempt.
/// A destination backing off takes them again once its `paused_until` has passed; a
/// destination with limits only once `limits_checked` says its gate let this one by.
async fn start(
    conn: &mut PgConnection,
    task: &DeliveryTask,
    attempt_id: &AttemptId,
    from: DeliveryStatus,
    now: DateTime<Utc>,
    limits_checked: bool,
) -> Result<Option<Box<Claimed>>, StoreError> {
    let started = sqlx::query_as::<_, Started>(concat!(
        "WITH current AS (
             SELECT d.id FROM deliveries d
             JOIN destinations dst ON dst.team_id = d.team_id AND dst.id = d.destination_id
             WHERE d.team_id = $1 AND d.id = $2 AND d.task_seq = $3 AND d.status = $4
               AND (dst.state = 'active'
                    OR (dst.state = 'backing_off' AND dst.paused_until <= $5)
                    OR (dst.state = 'auto_disabled' AND dst.probe_delivery_id = d.id))
               AND (NOT dst.limited OR $7)
             FOR UPDATE OF d
         ), started AS (
             UPDATE deliveries d SET status = 'in_flight', attempt_count = d.attempt_count + 1,
                 series_attempts = d.series_attempts + 1, updated_at = $5
             FROM current WHERE d.id = current.id
             RETURNING d.*
         ), attempt AS (
             INSERT INTO attempts (id, team_id, delivery_id, number, replay, status, started_at)
             SELECT $6, team_id, id, attempt_count, replay_count > 0, 'in_flight', $5 FROM started
         )
         SELECT s.*, ",
        claimed_columns!(),
        " FROM started s",
        claimed_joins!("s")
    ))
    .bind(&task.team_id)
    .bind(&task.delivery_id)
    .bind(task.seq)
    .bind(from.as_str())
    .bind(now)
    .bind(attempt_id)
    .bind(limits_checked)
    .fetch_optional(conn)
    .await?;
    Ok(started.map(|s| s.into_claimed(attempt_id)))
}

impl Started {
    fn into_claimed(self, attempt_id: &AttemptId) -> Box<Claimed> {
        let series_attempt = u32::try_from(self.delivery.series_attempts).unwrap_or(1);
        let is_probe = self.probe_delivery_id.as_ref() == Some(&self.delivery.id);
        Box::new(Claimed {
            delivery: self.delivery,
            kind: self.kind,
            url: self.url,
            settings: self.settings.0,
            sealed_signing_secret: self.signing_secret,
            sealed_previous_signing_secret: self.previous_signing_secret,
            sealed_credentials: self.sealed_credentials,
            headers: self.headers,
            body: self.body,
            event_type: self.event_type,
            received_at: self.received_at,
            dedup_key: self.dedup_key,
            source_name: self.source_name,
            source_provider: self.source_provider,
            team_slug: self.team_slug,
            template: self.route_template,
            subject: self.route_subject,
            is_probe,
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
    let own = sqlx::query_as::<_, Started>(concat!(
        "SELECT d.*, ",
        claimed_columns!(),
        " FROM deliveries d
         JOIN attempts a ON a.team_id = d.team_id AND a.delivery_id = d.id",
        claimed_joins!("d"),
        " WHERE d.team_id = $1 AND d.id = $2 AND a.id = $3 AND a.status = 'in_flight'"
    ))
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
                let reason =
                    "a fire was in flight when its worker stopped; it may have started a session";
                settle(
                    tx,
                    team,
                    &delivery,
                    DeliveryStatus::UnknownOutcome,
                    Some(reason),
                    now,
                )
                .await?;
                let alert = AlertTask {
                    team_id: team.clone(),
                    destination_id: Some(delivery.destination_id.clone()),
                    alert: Alert::UnknownOutcome {
                        delivery_id: delivery.id.clone(),
                        error: Some(reason.to_owned()),
                    },
                };
                let subject = delivery.destination_id.as_str();
                alerts::raise(tx, AlertKind::UnknownOutcome, subject, &alert, now).await?;
                return Ok(Claim::Skip("routine fire outcome unknown"));
            }
        }
        DeliveryStatus::Pending | DeliveryStatus::Throttled => {}
        _ => return Ok(Claim::Skip("delivery already settled")),
    }
    if let Some(reason) = limits::admit(tx, &delivery, now).await? {
        tracing::debug!(delivery = %delivery.id, reason, "throttled");
        return Ok(Claim::Skip("throttled by the destination's limits"));
    }
    Ok(
        match start(tx, task, attempt_id, delivery.status, now, true).await? {
            Some(claimed) => Claim::Send(claimed),
            None => wait_for_destination(tx, &delivery, now).await?,
        },
    )
}

/// A delivery whose destination is not taking deliveries waits for it: until
/// `paused_until` when it is backing off (without spending an attempt), or `held` while
/// it is paused or disabled, until a person or a recovery releases it.
async fn wait_for_destination(
    tx: &mut PgConnection,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let destination: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT state, paused_until FROM destinations WHERE team_id = $1 AND id = $2",
    )
    .bind(&delivery.team_id)
    .bind(&delivery.destination_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((state, paused_until)) = destination else {
        return Ok(Claim::Skip("destination no longer exists"));
    };
    let state: DestinationState = state.parse().map_err(StoreError::Internal)?;
    match (state, paused_until) {
        (DestinationState::BackingOff, Some(until)) if until > now => {
            let seq: i32 = sqlx::query_scalar(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $3,
                     task_seq = task_seq + 1, updated_at = $4
                 WHERE team_id = $1 AND id = $2 RETURNING task_seq",
            )
            .bind(&delivery.team_id)
            .bind(&delivery.id)
            .bind(until)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let task = DeliveryTask {
                team_id: delivery.team_id.clone(),
                delivery_id: delivery.id.clone(),
                seq,
            };
            push_deliveries(tx, &[(task, Some(until))]).await?;
            Ok(Claim::Skip(
                "destination backing off; waiting until it resumes",
            ))
        }
        (DestinationState::Paused | DestinationState::AutoDisabled, _) => {
            sqlx::query(
                "UPDATE deliveries SET status = 'held', next_attempt_at = NULL,
                     task_seq = task_seq + 1, updated_at = $3
                 WHERE team_id = $1 AND id = $2",
            )
            .bind(&delivery.team_id)
            .bind(&delivery.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(Claim::Skip("destination not taking deliveries; held"))
        }
        _ => Ok(Claim::Skip("event no longer exists")),
    }
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
    /// The headers sent, credentials redacted.
    pub request_headers: Option<serde_json::Value>,
    /// A routine's answer: the session the fire started.
    pub claude_code_session_id: Option<String>,
    pub claude_code_session_url: Option<String>,
    /// What the answer says about the destination as a whole.
    pub destination: DestinationEffect,
}

/// What an answer means for every delivery to its destination, not only this one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DestinationEffect {
    #[default]
    None,
    /// A 429 with `Retry-After` from a routine or Slack: hold sends until then.
    BackOffUntil(DateTime<Utc>),
    /// The receiver says it is gone for good (Slack's `no_service`): stop sending and
    /// hold deliveries until a person resumes the destination.
    Disable(String),
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
    policy: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let disabling = matches!(attempt.destination, DestinationEffect::Disable(_));
    let succeeded = matches!(decision, Decision::Succeeded);
    // A probe whose breaker a person closed (or paused) meanwhile is an ordinary attempt.
    let settled_probe = claimed.is_probe && !breaker::still_probing(conn, claimed).await?;
    let (status, error, next_at) = match decision {
        // The delivery did nothing wrong: it waits for the destination to be fixed.
        _ if disabling => (DeliveryStatus::Held, attempt.error.clone(), None),
        // A failed probe goes back to wait with the others; exhaustion still wins.
        Decision::RetryAt(_) if claimed.is_probe && !settled_probe => {
            (DeliveryStatus::Held, attempt.error.clone(), None)
        }
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
                 response_excerpt = $6, error = $7, request_headers = $15,
                 claude_code_session_id = $16, claude_code_session_url = $17
             WHERE team_id = $1 AND id = $2 AND status = 'in_flight'
         ), healthy AS (
             -- A success resets the breaker's count and ends a back-off whose time passed.
             UPDATE destinations SET consecutive_failures = 0,
                 state = CASE WHEN state = 'backing_off' AND paused_until <= $13
                              THEN 'active' ELSE state END,
                 paused_until = CASE WHEN state = 'backing_off' AND paused_until <= $13
                                     THEN NULL ELSE paused_until END
             WHERE team_id = $1 AND id = $18 AND $9 = 'succeeded'
               AND (consecutive_failures <> 0
                    OR (state = 'backing_off' AND paused_until <= $13))
         )
         UPDATE deliveries SET status = $9, last_error = $10, next_attempt_at = $11,
             task_seq = task_seq + $12, updated_at = $13,
             claude_code_session_id = coalesce($16, claude_code_session_id),
             claude_code_session_url = coalesce($17, claude_code_session_url)
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
    .bind(&error)
    .bind(next_at)
    .bind(i32::from(next_at.is_some()))
    .bind(now)
    .bind(claimed.delivery.task_seq)
    .bind(&attempt.request_headers)
    .bind(&attempt.claude_code_session_id)
    .bind(&attempt.claude_code_session_url)
    .bind(&claimed.delivery.destination_id);
    let quiet = succeeded && !claimed.is_probe;
    if quiet && next_at.is_none() && attempt.destination == DestinationEffect::None {
        if statement.fetch_optional(conn).await?.is_none() {
            stale(claimed);
        }
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    let Some(seq) = statement.fetch_optional(&mut *tx).await? else {
        stale(claimed);
        return Ok(());
    };
    breaker::apply_effect(&mut tx, claimed, &attempt.destination, policy, now).await?;
    let backing_off = matches!(attempt.destination, DestinationEffect::BackOffUntil(_));
    if claimed.is_probe {
        breaker::finish_probe(&mut tx, claimed, succeeded, policy, now).await?;
    } else if !succeeded && !backing_off {
        // A 429 asks for patience, not a verdict on the receiver: it backs off instead.
        breaker::count_failure(&mut tx, claimed, error.as_deref(), policy, now).await?;
    }
    if let Some(at) = next_at {
        let task = DeliveryTask {
            team_id: claimed.delivery.team_id.clone(),
            delivery_id: claimed.delivery.id.clone(),
            seq,
        };
        push_deliveries(&mut tx, &[(task, Some(at))]).await?;
    }
    settled_badly(&mut tx, claimed, status, error, now).await?;
    tx.commit().await?;
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
