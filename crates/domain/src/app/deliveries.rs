//! What a person does to deliveries: replay a settled one, send one waiting for its next
//! attempt now, cancel ones still waiting; one at a time or a selection. Each is audited.

use chrono::Utc;

use super::error::missing;
use super::{AppError, Scope};
use crate::delivery::{DeliveryStatus, DestinationKind};
use crate::ids::DeliveryId;
use crate::model::Delivery;
use crate::store::deliveries;

/// The most deliveries one selection may name.
pub const MAX_SELECTED: usize = 500;

/// Sends a settled delivery again: `pending` at once, with a fresh retry series.
pub async fn replay(scope: Scope<'_>, id: &DeliveryId) -> Result<Delivery, AppError> {
    let mut tx = scope.pool.begin().await?;
    let delivery = deliveries::replay(&mut tx, scope.team, id, Utc::now())
        .await
        .map_err(missing("delivery"))?;
    scope
        .audit(&mut *tx, "delivery.replay", id.as_str())
        .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Sends a delivery waiting for its next attempt now.
pub async fn retry_now(scope: Scope<'_>, id: &DeliveryId) -> Result<Delivery, AppError> {
    let mut tx = scope.pool.begin().await?;
    let delivery = deliveries::retry_now(&mut tx, scope.team, id, Utc::now())
        .await
        .map_err(missing("delivery"))?;
    scope
        .audit(&mut *tx, "delivery.retry_now", id.as_str())
        .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Cancels one delivery still waiting to be sent; the cancelled delivery.
pub async fn cancel(scope: Scope<'_>, id: &DeliveryId) -> Result<Delivery, AppError> {
    let mut tx = scope.pool.begin().await?;
    let done =
        deliveries::cancel(&mut tx, scope.team, std::slice::from_ref(id), Utc::now()).await?;
    // Read after the attempt: what kept it from being cancelled is what it is now.
    let delivery = deliveries::get(&mut *tx, scope.team, id)
        .await
        .map_err(missing("delivery"))?;
    if done.is_empty() {
        return Err(AppError::Conflict(format!(
            "delivery is {}; only a pending, held or throttled delivery can be cancelled",
            delivery.status
        )));
    }
    scope
        .audit(&mut *tx, "delivery.cancel", id.as_str())
        .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// What a selection did: how many deliveries it moved, and how many it passed over
/// because they were not in a state the action takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub done: usize,
    pub skipped: usize,
}

/// Cancels those of `ids` still waiting; the others stay as they are.
pub async fn cancel_selected(scope: Scope<'_>, ids: &[DeliveryId]) -> Result<Selected, AppError> {
    check_selection(ids)?;
    let mut tx = scope.pool.begin().await?;
    let done = deliveries::cancel(&mut tx, scope.team, ids, Utc::now()).await?;
    for id in &done {
        scope
            .audit(&mut *tx, "delivery.cancel", id.as_str())
            .await?;
    }
    tx.commit().await?;
    Ok(Selected {
        done: done.len(),
        skipped: ids.len() - done.len(),
    })
}

/// Replays those of `ids` that are settled; the others stay as they are. A replay to a
/// routine starts a new (paid) Claude Code session, so one that reaches a routine needs
/// `routines_confirmed`.
pub async fn replay_selected(
    scope: Scope<'_>,
    ids: &[DeliveryId],
    routines_confirmed: bool,
) -> Result<Selected, AppError> {
    check_selection(ids)?;
    if !routines_confirmed
        && deliveries::any_to(scope.pool, scope.team, ids, DestinationKind::Routine).await?
    {
        return Err(AppError::field(
            "confirm",
            "some of these deliveries go to a routine, and each replay starts a new Claude Code session: confirm first",
        ));
    }
    let mut tx = scope.pool.begin().await?;
    let now = Utc::now();
    let mut done = 0;
    for id in ids {
        match deliveries::replay(&mut tx, scope.team, id, now).await {
            Ok(_) => {
                scope
                    .audit(&mut *tx, "delivery.replay", id.as_str())
                    .await?;
                done += 1;
            }
            // Not the team's, or not settled: passed over, like a cancel passes over
            // what it cannot take.
            Err(crate::StoreError::NotFound | crate::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(Selected {
        done,
        skipped: ids.len() - done,
    })
}

fn check_selection(ids: &[DeliveryId]) -> Result<(), AppError> {
    match ids.len() {
        0 => Err(AppError::field("id", "select at least one delivery")),
        n if n > MAX_SELECTED => Err(AppError::field(
            "id",
            format!("select at most {MAX_SELECTED} deliveries at once; a bulk replay takes more"),
        )),
        _ => Ok(()),
    }
}

/// Whether a delivery is waiting to be retried: pending after a failed attempt of its
/// current series. A label for people, not a state.
pub fn is_retrying(delivery: &Delivery) -> bool {
    delivery.status == DeliveryStatus::Pending && delivery.series_attempts > 0
}
