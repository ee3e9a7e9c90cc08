//! Coalescing, on what the plan starts. A coalescing route's delivery falls due when its
//! window closes (`window_ms` after its event arrived); being the first of its key to
//! fall due, it anchors the window. The pending first-time deliveries of its route and
//! key that arrived within the window are its members: the newest by event time is
//! started in its place, the others become `cancelled`, superseded by it. The window is
//! fixed, never extended by later events, which start a window of their own. Replays
//! and retries are never coalesced; nor is a breaker's probe. A member another claim
//! is starting at that very moment (its row locked) goes on its own.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::delivery::Transition;
use crate::ids::{AttemptId, DeliveryId, EventId, RouteId};
use crate::store::StoreError;

/// Replaces each coalescing start by its window's newest delivery and cancels the rest
/// of the window.
pub(super) async fn settle(
    tx: &mut PgConnection,
    starts: &mut Vec<(DeliveryId, AttemptId, bool)>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let firsts: Vec<&DeliveryId> = starts
        .iter()
        .filter(|(_, _, probe)| !probe)
        .map(|(id, _, _)| id)
        .collect();
    if firsts.is_empty() {
        return Ok(());
    }
    #[derive(sqlx::FromRow)]
    struct Anchor {
        id: DeliveryId,
        route_id: RouteId,
        coalesce_key: String,
        created_at: DateTime<Utc>,
        window_ms: i32,
    }
    let anchors = sqlx::query_as::<_, Anchor>(
        "SELECT d.id, d.route_id, d.coalesce_key, d.created_at,
                (r.coalescing->>'window_ms')::int AS window_ms
         FROM deliveries d JOIN routes r ON r.team_id = d.team_id AND r.id = d.route_id
         WHERE d.id = ANY($1) AND d.coalesce_key IS NOT NULL
           AND d.attempt_count = 0 AND d.replay_count = 0 AND r.coalescing IS NOT NULL",
    )
    .bind(&firsts)
    .fetch_all(&mut *tx)
    .await?;
    let mut cancelled: HashSet<DeliveryId> = HashSet::new();
    for anchor in anchors {
        if cancelled.contains(&anchor.id) {
            continue;
        }
        // Newest first. Rows another claim holds are left out of the window.
        let members: Vec<(DeliveryId, EventId)> = sqlx::query_as(
            "SELECT id, event_id FROM deliveries
             WHERE route_id = $1 AND coalesce_key = $2 AND status IN ('pending', 'throttled')
               AND attempt_count = 0 AND replay_count = 0
               AND created_at >= $3 AND created_at <= $3 + $4 * interval '1 millisecond'
             ORDER BY coalesce(event_at, created_at) DESC, created_at DESC, id DESC
             FOR UPDATE SKIP LOCKED",
        )
        .bind(&anchor.route_id)
        .bind(&anchor.coalesce_key)
        .bind(anchor.created_at)
        .bind(anchor.window_ms)
        .fetch_all(&mut *tx)
        .await?;
        let Some(((newest, newest_event), rest)) = members.split_first() else {
            continue;
        };
        let superseded: Vec<&DeliveryId> = rest.iter().map(|(id, _)| id).collect();
        if !superseded.is_empty() {
            sqlx::query(
                "UPDATE deliveries SET status = $2, last_error = $3, next_attempt_at = NULL,
                     slot_at = NULL, updated_at = $4
                 WHERE id = ANY($1) AND status = ANY($5)",
            )
            .bind(&superseded)
            .bind(Transition::Cancel.to().as_str())
            .bind(format!("superseded by {newest_event} (coalesced)"))
            .bind(now)
            .bind(Transition::Cancel.from_names())
            .execute(&mut *tx)
            .await?;
            cancelled.extend(superseded.into_iter().cloned());
        }
        if *newest != anchor.id
            && !starts.iter().any(|(id, _, _)| id == newest)
            && let Some(start) = starts.iter_mut().find(|(id, _, _)| *id == anchor.id)
        {
            start.0 = newest.clone();
        }
    }
    starts.retain(|(id, _, _)| !cancelled.contains(id));
    Ok(())
}
