//! Writing what the claim decided: the deliveries that wait, are held or throttled
//! ([`apply`]), and the ones that start under a lease with a new attempt ([`start`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::plan::{LOST, Plan, UNKNOWN_FIRE};
use crate::delivery::Transition;
use crate::delivery::limits::LimitState;
use crate::ids::{AttemptId, DeliveryId, DestinationId};
use crate::store::StoreError;
use crate::store::alerts::{self, AlertKind};
use crate::store::attempts::{CLAIMED, Claimed, Started};
use crate::store::breaker;
use crate::store::queue::{Alert, AlertTask};

/// Writes what was decided about the deliveries that are not started.
pub(super) async fn apply(
    tx: &mut PgConnection,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !plan.lost.is_empty() {
        sqlx::query(
            "UPDATE attempts SET status = 'lost', error = $2
             WHERE id = ANY($1) AND status = 'in_flight'",
        )
        .bind(&plan.lost)
        .bind(LOST)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.moves.is_empty() {
        sqlx::query(
            "UPDATE deliveries d SET status = m.status, next_attempt_at = m.next_attempt_at,
                 slot_at = m.slot_at, last_error = coalesce(m.error, d.last_error),
                 lease_until = NULL, updated_at = $6
             FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                         $5::text[]) AS m (id, status, next_attempt_at, slot_at, error)
             WHERE d.id = m.id",
        )
        .bind(plan.moves.iter().map(|m| &m.id).collect::<Vec<_>>())
        .bind(
            plan.moves
                .iter()
                .map(|m| m.transition.to().as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.moves
                .iter()
                .map(|m| m.next_attempt_at)
                .collect::<Vec<_>>(),
        )
        .bind(plan.moves.iter().map(|m| m.slot_at).collect::<Vec<_>>())
        .bind(
            plan.moves
                .iter()
                .map(|m| m.error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    for unknown in &plan.unknown {
        let alert = AlertTask {
            team_id: unknown.team.clone(),
            destination_id: Some(unknown.destination.clone()),
            alert: Alert::UnknownOutcome {
                delivery_id: unknown.delivery.clone(),
                error: Some(UNKNOWN_FIRE.to_owned()),
            },
        };
        let subject = unknown.destination.as_str();
        alerts::raise(tx, AlertKind::UnknownOutcome, subject, &alert, now).await?;
    }
    if !plan.probes.is_empty() {
        sqlx::query(
            "UPDATE destination_runtime r SET probe_delivery_id = p.probe
             FROM unnest($1::text[], $2::text[]) AS p (id, probe)
             WHERE r.id = p.id AND r.state = 'auto_disabled'",
        )
        .bind(plan.probes.iter().map(|(d, _)| d).collect::<Vec<_>>())
        .bind(plan.probes.iter().map(|(_, p)| p).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    for (team, destination, at) in &plan.reprobe {
        breaker::next_probe(tx, team, destination, at.unwrap_or(now)).await?;
    }
    if !plan.limits.is_empty() {
        let (ids, states): (Vec<&DestinationId>, Vec<&LimitState>) =
            plan.limits.iter().map(|(d, s)| (d, s)).unzip();
        sqlx::query(
            "UPDATE destination_runtime r SET next_slot_at = u.next_slot_at,
                 budget_hour_start = u.hour_start, budget_hour_used = u.hour_used,
                 budget_day_start = u.day_start, budget_day_used = u.day_used
             FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int[],
                         $5::timestamptz[], $6::int[])
                  AS u (id, next_slot_at, hour_start, hour_used, day_start, day_used)
             WHERE r.id = u.id",
        )
        .bind(ids)
        .bind(states.iter().map(|s| s.next_slot_at).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.hour.start).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.hour.used).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.day.start).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.day.used).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Starts the chosen deliveries: each becomes `in_flight` under a lease, with a new
/// attempt row, and comes back with everything its request needs, in the plan's order.
pub(super) async fn start(
    tx: &mut PgConnection,
    starts: &[(DeliveryId, AttemptId, bool)],
    lease: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Claimed>, StoreError> {
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH go AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])
                 AS g (id, attempt_id, probe)
         ), started AS (
             UPDATE deliveries d SET status = $6, attempt_count = d.attempt_count + 1,
                 series_attempts = d.series_attempts + 1, current_attempt_id = g.attempt_id,
                 lease_until = clock_timestamp() + $4 * interval '1 millisecond', slot_at = NULL,
                 updated_at = $5
             FROM go g WHERE d.id = g.id AND d.status = ANY($7)
             RETURNING d.*, g.probe
         ), attempt AS (
             INSERT INTO attempts (id, team_id, delivery_id, number, replay, status, started_at,
                                   due_at)
             SELECT current_attempt_id, team_id, id, attempt_count, replay_count > 0,
                    'in_flight', $5, least(next_attempt_at, $5)
             FROM started
         )
         {CLAIMED}"
    );
    let rows = sqlx::query_as::<_, Started>(sqlx::AssertSqlSafe(sql))
        .bind(starts.iter().map(|(d, _, _)| d).collect::<Vec<_>>())
        .bind(starts.iter().map(|(_, a, _)| a).collect::<Vec<_>>())
        .bind(starts.iter().map(|(_, _, p)| *p).collect::<Vec<_>>())
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .bind(now)
        .bind(Transition::Start.to().as_str())
        .bind(Transition::Start.from_names())
        .fetch_all(&mut *tx)
        .await?;
    let order: HashMap<&DeliveryId, usize> = starts
        .iter()
        .enumerate()
        .map(|(i, (d, _, _))| (d, i))
        .collect();
    let mut rows: Vec<(usize, Started)> = rows
        .into_iter()
        .map(|row| (order.get(row.id()).copied().unwrap_or(usize::MAX), row))
        .collect();
    rows.sort_by_key(|(i, _)| *i);
    let started: HashSet<&DeliveryId> = rows.iter().map(|(_, r)| r.id()).collect();
    if started.len() < starts.len() {
        // A delivery whose event, source or team went between locking and starting: it
        // is deleted with them.
        tracing::warn!(
            missing = starts.len() - started.len(),
            "claimed deliveries vanished"
        );
    }
    Ok(rows.into_iter().map(|(_, r)| r.into_claimed()).collect())
}
