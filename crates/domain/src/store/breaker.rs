//! What an attempt's outcome does to its whole destination: a back-off from a 429, and
//! the circuit breaker (counting failed attempts, opening, its probe and its outcome).
//! The state lives in `destination_runtime`, apart from the destination's configuration;
//! `outcomes` calls these on the transaction that records the attempt, so a
//! destination's state never disagrees with the attempts that moved it.
//!
//! The probe is an ordinary due delivery: the one the breaker chose, due when the
//! cool-down ends. The claim sends it like any other and holds the rest.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;
use super::alerts::{self, AlertKind};
use super::attempts::{Claimed, DestinationEffect};
use super::destinations;
use super::queue::{Alert, AlertTask, push_alert};
use crate::delivery::Transition;
use crate::delivery::breaker::BreakerPolicy;
use crate::ids::{DeliveryId, DestinationId, TeamId};

/// Moves the destination as an answer demands. A person's pause stands: neither effect
/// overrides it.
pub(super) async fn apply_effect(
    tx: &mut PgConnection,
    claimed: &Claimed,
    effect: &DestinationEffect,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let team = &claimed.delivery.team_id;
    let id = &claimed.delivery.destination_id;
    match effect {
        DestinationEffect::None => {}
        DestinationEffect::BackOffUntil(until) => {
            sqlx::query(
                "UPDATE destination_runtime SET state = 'backing_off',
                     paused_until = greatest(coalesce(paused_until, $3), $3)
                 WHERE team_id = $1 AND id = $2 AND state IN ('active', 'backing_off')",
            )
            .bind(team)
            .bind(id)
            .bind(until)
            .execute(&mut *tx)
            .await?;
        }
        DestinationEffect::Disable(reason) => {
            open(tx, team, id, reason, breaker, now).await?;
        }
    }
    Ok(())
}

/// Opens the breaker unless it is open already or a person paused the destination: the
/// oldest delivery waiting for it becomes the probe, due after the first cool-down, the
/// others are held as their turn comes, and the team's admins get one email.
async fn open(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
    reason: &str,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let cooldown = breaker.first_cooldown;
    let probe_at = now + cooldown;
    let opened = sqlx::query(
        "UPDATE destination_runtime SET state = 'auto_disabled', state_reason = $3,
             paused_until = NULL, cooldown_seconds = $4, probe_at = $5,
             probe_delivery_id = NULL
         WHERE team_id = $1 AND id = $2 AND state NOT IN ('paused', 'auto_disabled')",
    )
    .bind(team)
    .bind(id)
    .bind(reason)
    .bind(i32::try_from(cooldown.num_seconds()).unwrap_or(i32::MAX))
    .bind(probe_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if opened == 0 {
        return Ok(());
    }
    tracing::warn!(destination = %id, reason, "destination disabled");
    next_probe(tx, team, id, probe_at).await?;
    let alert = AlertTask {
        team_id: team.clone(),
        destination_id: Some(id.clone()),
        alert: Alert::Disabled {
            reason: reason.to_owned(),
        },
    };
    alerts::raise(tx, AlertKind::DestinationDisabled, id.as_str(), &alert, now).await
}

/// Counts a failed attempt against the destination; the threshold opens the breaker.
pub(super) async fn count_failure(
    tx: &mut PgConnection,
    claimed: &Claimed,
    error: Option<&str>,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let team = &claimed.delivery.team_id;
    let id = &claimed.delivery.destination_id;
    let failures: Option<i32> = sqlx::query_scalar(
        "UPDATE destination_runtime SET consecutive_failures = consecutive_failures + 1
         WHERE team_id = $1 AND id = $2 RETURNING consecutive_failures",
    )
    .bind(team)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match failures {
        Some(n) if breaker.opens_at(n) => {
            let reason = format!(
                "{n} consecutive failed attempts; the last: {}",
                error.unwrap_or("no answer")
            );
            open(tx, team, id, &reason, breaker, now).await
        }
        _ => Ok(()),
    }
}

/// A success resets the breaker's count and ends a back-off whose time has passed.
pub(super) async fn count_success(
    tx: &mut PgConnection,
    claimed: &Claimed,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE destination_runtime SET consecutive_failures = 0,
             state = CASE WHEN state = 'backing_off' AND paused_until <= $3
                          THEN 'active' ELSE state END,
             paused_until = CASE WHEN state = 'backing_off' AND paused_until <= $3
                                 THEN NULL ELSE paused_until END
         WHERE team_id = $1 AND id = $2
           AND (consecutive_failures <> 0 OR (state = 'backing_off' AND paused_until <= $3))",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.destination_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whether the destination's breaker is still open with this delivery as its probe (a
/// person may have resumed or paused it meanwhile). Locks the runtime row.
pub(super) async fn still_probing(
    tx: &mut PgConnection,
    claimed: &Claimed,
) -> Result<bool, StoreError> {
    let probing: Option<bool> = sqlx::query_scalar(
        "SELECT state = 'auto_disabled' AND probe_delivery_id IS NOT DISTINCT FROM $3
         FROM destination_runtime WHERE team_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.destination_id)
    .bind(&claimed.delivery.id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(probing.unwrap_or(false))
}

/// The probe went through: the breaker closes, the held deliveries are released in
/// creation order, and whoever hears of disabled destinations hears of the recovery.
pub(super) async fn probe_succeeded(
    tx: &mut PgConnection,
    claimed: &Claimed,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let team = &claimed.delivery.team_id;
    let id = &claimed.delivery.destination_id;
    let released = destinations::resume(tx, team, id, now).await?;
    tracing::info!(destination = %id, released, "probe succeeded; destination recovered");
    if !alerts::settings(&mut *tx, team).await?.destination_disabled {
        return Ok(());
    }
    let alert = AlertTask {
        team_id: team.clone(),
        destination_id: Some(id.clone()),
        alert: Alert::Recovered {
            released: u32::try_from(released).unwrap_or(u32::MAX),
        },
    };
    push_alert(tx, &alert).await
}

/// The probe failed: the cool-down doubles. Returns when the next probe may go.
pub(super) async fn probe_failed(
    tx: &mut PgConnection,
    claimed: &Claimed,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    let team = &claimed.delivery.team_id;
    let id = &claimed.delivery.destination_id;
    let last: i32 = sqlx::query_scalar(
        "SELECT cooldown_seconds FROM destination_runtime WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let cooldown = breaker.after_failed_probe(chrono::Duration::seconds(i64::from(last)));
    let probe_at = now + cooldown;
    sqlx::query(
        "UPDATE destination_runtime SET cooldown_seconds = $3, probe_at = $4
         WHERE team_id = $1 AND id = $2 AND state = 'auto_disabled'",
    )
    .bind(team)
    .bind(id)
    .bind(i32::try_from(cooldown.num_seconds()).unwrap_or(i32::MAX))
    .bind(probe_at)
    .execute(&mut *tx)
    .await?;
    Ok(probe_at)
}

/// Makes the destination's oldest waiting delivery (held, or queued for a retry) its
/// probe, due at `at`; with none waiting, the next delivery a claim picks up becomes the
/// probe. For a breaker that opens, and for one whose probe settled (failed for good,
/// an unknown outcome, or deleted with its event). A delivery a claim holds locked right
/// now is passed over: that claim sees the probe chosen here.
pub(super) async fn next_probe(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
    at: DateTime<Utc>,
) -> Result<Option<DeliveryId>, StoreError> {
    let probe: Option<DeliveryId> = sqlx::query_scalar(
        "WITH oldest AS (
             SELECT id FROM deliveries
             WHERE team_id = $1 AND destination_id = $2
               AND status = ANY($4)
             ORDER BY id LIMIT 1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE deliveries d SET status = $5, next_attempt_at = $3, slot_at = NULL,
             updated_at = now()
         FROM oldest WHERE d.id = oldest.id
         RETURNING d.id",
    )
    .bind(team)
    .bind(id)
    .bind(at)
    .bind(Transition::Probe.from_names())
    .bind(Transition::Probe.to().as_str())
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE destination_runtime SET probe_delivery_id = $3
         WHERE team_id = $1 AND id = $2 AND state = 'auto_disabled'",
    )
    .bind(team)
    .bind(id)
    .bind(&probe)
    .execute(&mut *tx)
    .await?;
    Ok(probe)
}

/// Open breakers left without a probe that can go while deliveries wait for them: the
/// probe's delivery went with its event (retention), or settled without choosing
/// another. Each gets its oldest waiting delivery as the next probe. The system's own
/// upkeep, across teams; a backstop, since settling a probe chooses the next one.
/// Returns how many were repaired.
#[tracing::instrument(skip_all)]
pub async fn repair_probes(tx: &mut PgConnection, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let orphaned: Vec<(TeamId, DestinationId, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT r.team_id, r.id, r.probe_at FROM destination_runtime r
         WHERE r.state = 'auto_disabled'
           AND NOT EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.id = r.probe_delivery_id
                 AND d.status IN ('pending', 'throttled', 'in_flight'))
           AND EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.destination_id = r.id AND d.status = 'held')
         ORDER BY r.id
         FOR UPDATE OF r SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (team, id, at) in &orphaned {
        next_probe(tx, team, id, at.unwrap_or(now).max(now)).await?;
    }
    Ok(orphaned.len())
}
