//! What an attempt's outcome does to its whole destination: a back-off from a 429, and
//! the circuit breaker (counting failed attempts, opening, its probes and their
//! outcome). Called by `attempts::record` on the transaction that records the attempt,
//! so a destination's state never disagrees with the attempts that moved it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;
use super::alerts::{self, AlertKind};
use super::attempts::{Claimed, DestinationEffect};
use super::destinations;
use super::queue::{Alert, AlertTask, DeliveryTask, push_alert, push_deliveries};
use crate::delivery::breaker::BreakerPolicy;

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
                "UPDATE destinations SET state = 'backing_off', updated_at = $4,
                     paused_until = greatest(coalesce(paused_until, $3), $3)
                 WHERE team_id = $1 AND id = $2 AND state IN ('active', 'backing_off')",
            )
            .bind(team)
            .bind(id)
            .bind(until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        DestinationEffect::Disable(reason) => {
            open_breaker(tx, claimed, reason, breaker, now).await?;
        }
    }
    Ok(())
}

/// Opens the breaker unless it is open already or a person paused the destination:
/// new and pending deliveries are held as their turn comes, a probe is due after the
/// first cool-down, and the team's admins get one email.
async fn open_breaker(
    tx: &mut PgConnection,
    claimed: &Claimed,
    reason: &str,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let team = &claimed.delivery.team_id;
    let id = &claimed.delivery.destination_id;
    let cooldown = breaker.first_cooldown;
    let opened = sqlx::query(
        "UPDATE destinations SET state = 'auto_disabled', state_reason = $3,
             paused_until = NULL, cooldown_seconds = $4, probe_at = $5,
             probe_delivery_id = NULL, updated_at = $6
         WHERE team_id = $1 AND id = $2 AND state NOT IN ('paused', 'auto_disabled')",
    )
    .bind(team)
    .bind(id)
    .bind(reason)
    .bind(i32::try_from(cooldown.num_seconds()).unwrap_or(i32::MAX))
    .bind(now + cooldown)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if opened > 0 {
        tracing::warn!(destination = %id, reason, "destination disabled");
        let alert = AlertTask {
            team_id: team.clone(),
            destination_id: Some(id.clone()),
            alert: Alert::Disabled {
                reason: reason.to_owned(),
            },
        };
        alerts::raise(tx, AlertKind::DestinationDisabled, id.as_str(), &alert, now).await?;
    }
    Ok(())
}

/// Counts a failed attempt against the destination; the threshold opens the breaker.
pub(super) async fn count_failure(
    tx: &mut PgConnection,
    claimed: &Claimed,
    error: Option<&str>,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let failures: Option<i32> = sqlx::query_scalar(
        "UPDATE destinations SET consecutive_failures = consecutive_failures + 1
         WHERE team_id = $1 AND id = $2 RETURNING consecutive_failures",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.destination_id)
    .fetch_optional(&mut *tx)
    .await?;
    match failures {
        Some(n) if breaker.opens_at(n) => {
            let reason = format!(
                "{n} consecutive failed attempts; the last: {}",
                error.unwrap_or("no answer")
            );
            open_breaker(tx, claimed, &reason, breaker, now).await
        }
        _ => Ok(()),
    }
}

/// Whether the destination's breaker is still open with this delivery as its probe.
pub(super) async fn still_probing(
    conn: &mut PgConnection,
    claimed: &Claimed,
) -> Result<bool, StoreError> {
    let probing: Option<bool> = sqlx::query_scalar(
        "SELECT state = 'auto_disabled' AND probe_delivery_id = $3
         FROM destinations WHERE team_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.destination_id)
    .bind(&claimed.delivery.id)
    .fetch_optional(conn)
    .await?;
    Ok(probing.unwrap_or(false))
}

/// A probe's outcome: success closes the breaker and releases what it held; failure
/// doubles the cool-down before the next probe. Checked again under the destination's
/// lock: if a person resumed or paused the destination meanwhile, theirs is the last word,
/// and a probe that was held back to wait is released if nothing else will release it.
pub(super) async fn finish_probe(
    tx: &mut PgConnection,
    claimed: &Claimed,
    succeeded: bool,
    breaker: &BreakerPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let team = &claimed.delivery.team_id;
    let id = &claimed.delivery.destination_id;
    if !still_probing(tx, claimed).await? {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM destinations WHERE team_id = $1 AND id = $2")
                .bind(team)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if state.as_deref() == Some("active") {
            release_if_held(tx, claimed, now).await?;
        }
        return Ok(());
    }
    if succeeded {
        let released = destinations::resume(tx, team, id, now).await?;
        tracing::info!(destination = %id, released, "probe succeeded; destination recovered");
        // A later disabling is news again, however soon it comes.
        alerts::forget(&mut *tx, team, AlertKind::DestinationDisabled, id.as_str()).await?;
        // The all-clear goes to whoever hears about disabled destinations.
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
        return push_alert(tx, &alert).await;
    }
    let last: i32 = sqlx::query_scalar(
        "SELECT cooldown_seconds FROM destinations WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let cooldown = breaker.after_failed_probe(chrono::Duration::seconds(i64::from(last)));
    sqlx::query(
        "UPDATE destinations SET cooldown_seconds = $3, probe_at = $4, probe_delivery_id = NULL
         WHERE team_id = $1 AND id = $2 AND state = 'auto_disabled'",
    )
    .bind(team)
    .bind(id)
    .bind(i32::try_from(cooldown.num_seconds()).unwrap_or(i32::MAX))
    .bind(now + cooldown)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sends a delivery left `held` back to the queue.
async fn release_if_held(
    tx: &mut PgConnection,
    claimed: &Claimed,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let seq: Option<i32> = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $3,
             task_seq = task_seq + 1, updated_at = $3
         WHERE team_id = $1 AND id = $2 AND status = 'held' RETURNING task_seq",
    )
    .bind(&claimed.delivery.team_id)
    .bind(&claimed.delivery.id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(seq) = seq {
        let task = DeliveryTask {
            team_id: claimed.delivery.team_id.clone(),
            delivery_id: claimed.delivery.id.clone(),
            seq,
        };
        push_deliveries(tx, &[(task, None)]).await?;
    }
    Ok(())
}
