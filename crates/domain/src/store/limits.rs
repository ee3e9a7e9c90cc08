//! The store side of per-destination limits: the state lives on the destination row,
//! and a claim for a limited destination takes that row's lock, asks
//! [`gate`](crate::delivery::limits::gate), and writes the answer back, so the limits
//! hold across every worker process. Destinations without limits never come here.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;

use super::StoreError;
use super::queue::{DeliveryTask, push_deliveries};
use crate::delivery::limits::{LimitState, Verdict, Window, gate};
use crate::model::{Delivery, DestinationSettings};

#[derive(sqlx::FromRow)]
struct Row {
    settings: Json<DestinationSettings>,
    state: String,
    paused_until: Option<DateTime<Utc>>,
    limited: bool,
    next_slot_at: Option<DateTime<Utc>>,
    budget_hour_start: Option<DateTime<Utc>>,
    budget_hour_used: i32,
    budget_day_start: Option<DateTime<Utc>>,
    budget_day_used: i32,
}

/// Whether `delivery` may be sent now under its destination's limits. `None`: go ahead
/// (the send is counted). `Some(reason)`: it has been made `throttled` with a task for
/// the time it may try again.
pub(super) async fn admit(
    tx: &mut PgConnection,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let team = &delivery.team_id;
    let row = sqlx::query_as::<_, Row>(
        "SELECT settings, state, paused_until, limited, next_slot_at, budget_hour_start, budget_hour_used,
             budget_day_start, budget_day_used
         FROM destinations WHERE team_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(team)
    .bind(&delivery.destination_id)
    .fetch_optional(&mut *tx)
    .await?;
    // A destination that is not taking deliveries is the claim's business, not the
    // limits': nothing is counted for a send that will not happen.
    let taking = |r: &Row| {
        r.state == "active"
            || (r.state == "backing_off" && r.paused_until.is_some_and(|until| until <= now))
    };
    let Some(row) = row.filter(|r| r.limited && taking(r)) else {
        return Ok(None);
    };
    let limits = row.settings.0.limits;
    let in_flight: i64 = if limits.max_in_flight.is_some() {
        sqlx::query_scalar(
            "SELECT count(*) FROM deliveries
             WHERE destination_id = $1 AND status = 'in_flight' AND id <> $2",
        )
        .bind(&delivery.destination_id)
        .bind(&delivery.id)
        .fetch_one(&mut *tx)
        .await?
    } else {
        0
    };
    let reserved: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT slot_at FROM deliveries WHERE team_id = $1 AND id = $2")
            .bind(team)
            .bind(&delivery.id)
            .fetch_one(&mut *tx)
            .await?;
    let state = LimitState {
        next_slot_at: row.next_slot_at,
        hour: Window {
            start: row.budget_hour_start,
            used: row.budget_hour_used,
        },
        day: Window {
            start: row.budget_day_start,
            used: row.budget_day_used,
        },
        in_flight,
    };
    let (verdict, next) = gate(&limits, state, reserved, now);
    sqlx::query(
        "UPDATE destinations SET next_slot_at = $3, budget_hour_start = $4,
             budget_hour_used = $5, budget_day_start = $6, budget_day_used = $7
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(&delivery.destination_id)
    .bind(next.next_slot_at)
    .bind(next.hour.start)
    .bind(next.hour.used)
    .bind(next.day.start)
    .bind(next.day.used)
    .execute(&mut *tx)
    .await?;
    match verdict {
        Verdict::Send => {
            if reserved.is_some() {
                sqlx::query("UPDATE deliveries SET slot_at = NULL WHERE team_id = $1 AND id = $2")
                    .bind(team)
                    .bind(&delivery.id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(None)
        }
        Verdict::Wait {
            until,
            reserved,
            reason,
        } => {
            let seq: i32 = sqlx::query_scalar(
                "UPDATE deliveries SET status = 'throttled', next_attempt_at = $3, slot_at = $4,
                     task_seq = task_seq + 1, updated_at = $5
                 WHERE team_id = $1 AND id = $2 RETURNING task_seq",
            )
            .bind(team)
            .bind(&delivery.id)
            .bind(until)
            .bind(reserved)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let task = DeliveryTask {
                team_id: team.clone(),
                delivery_id: delivery.id.clone(),
                seq,
            };
            push_deliveries(tx, &[(task, Some(until))]).await?;
            Ok(Some(reason))
        }
    }
}
