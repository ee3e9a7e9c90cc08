//! Destinations and their sealed signing secrets.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgExecutor};

use super::StoreError;
use super::queue::{DeliveryTask, push_deliveries};
use crate::delivery::DestinationKind;
use crate::ids::{DeliveryId, DestinationId, TeamId};
use crate::model::{Destination, DestinationSettings};

macro_rules! columns {
    () => {
        "id, team_id, name, kind, state, state_reason, paused_until, consecutive_failures,
         probe_at, url, settings, created_at, updated_at"
    };
}

team_table!("destinations", Destination, DestinationId, columns!());

/// A destination to create; secrets arrive sealed.
#[derive(Debug)]
pub struct NewDestination<'a> {
    pub name: &'a str,
    pub kind: DestinationKind,
    pub url: Option<&'a str>,
    pub settings: &'a DestinationSettings,
    pub sealed_signing_secret: &'a [u8],
    pub sealed_credentials: Option<&'a [u8]>,
}

#[tracing::instrument(skip_all)]
pub async fn insert(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    new: NewDestination<'_>,
) -> Result<Destination, StoreError> {
    Ok(sqlx::query_as::<_, Destination>(concat!(
        "INSERT INTO destinations
             (id, team_id, name, kind, url, settings, signing_secret, sealed_credentials)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
        columns!()
    ))
    .bind(DestinationId::generate())
    .bind(team)
    .bind(new.name)
    .bind(new.kind.as_str())
    .bind(new.url)
    .bind(Json(new.settings))
    .bind(new.sealed_signing_secret)
    .bind(new.sealed_credentials)
    .fetch_one(db)
    .await?)
}

/// A destination's new shape, whole: the caller read the current one under
/// [`lock_with_credentials`] and changed what the request named.
#[derive(Debug)]
pub struct DestinationPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub settings: DestinationSettings,
    pub sealed_credentials: Option<Vec<u8>>,
}

/// The destination and its sealed credentials, locked until the transaction ends so a
/// concurrent change cannot be lost between reading and writing them.
#[tracing::instrument(skip_all)]
pub async fn lock_with_credentials(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
) -> Result<(Destination, Option<Vec<u8>>), StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        destination: Destination,
        sealed_credentials: Option<Vec<u8>>,
    }
    let row = sqlx::query_as::<_, Row>(concat!(
        "SELECT ",
        columns!(),
        ", sealed_credentials FROM destinations WHERE team_id = $1 AND id = $2 FOR UPDATE"
    ))
    .bind(team)
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok((row.destination, row.sealed_credentials))
}

#[tracing::instrument(skip_all)]
pub async fn update(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
    patch: DestinationPatch,
) -> Result<Destination, StoreError> {
    Ok(sqlx::query_as::<_, Destination>(concat!(
        "UPDATE destinations SET
             name = coalesce($3, name),
             url = $4,
             settings = $5,
             sealed_credentials = $6,
             updated_at = now()
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(patch.name)
    .bind(patch.url)
    .bind(Json(patch.settings))
    .bind(patch.sealed_credentials)
    .fetch_one(db)
    .await?)
}

/// A person pauses the destination: nothing more is sent, and its deliveries are held
/// as their turn comes, until it is resumed.
#[tracing::instrument(skip_all)]
pub async fn pause(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE destinations SET state = 'paused', state_reason = 'paused by a person',
             paused_until = NULL, updated_at = $3
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A person (or a recovery) makes the destination active again: whatever paused,
/// disabled or slowed it is cleared, and its held deliveries are released in the order
/// they were created. Under a rate limit each gets its own send slot in that order (so
/// they also arrive in it); otherwise all go at once. Returns how many were released.
#[tracing::instrument(skip_all)]
pub async fn resume(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let (settings,): (Json<DestinationSettings>,) = sqlx::query_as(
        "UPDATE destinations SET state = 'active', state_reason = NULL,
                 paused_until = NULL, consecutive_failures = 0, cooldown_seconds = 0,
                 probe_at = NULL, probe_delivery_id = NULL, updated_at = $3
             WHERE team_id = $1 AND id = $2 RETURNING settings",
    )
    .bind(team)
    .bind(id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let interval = settings.0.limits.interval();
    // Slots reserved by deliveries that were held instead are free again: start after
    // the last one still taken, not after the last one ever handed out.
    let taken: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT max(slot_at) FROM deliveries
         WHERE team_id = $1 AND destination_id = $2 AND status = 'throttled'",
    )
    .bind(team)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let base = match (taken, interval) {
        (Some(at), Some(interval)) => (at + interval).max(now),
        _ => now,
    };
    // Ids sort by creation time; the i-th held delivery gets slot base + i × interval.
    let mut released: Vec<(DeliveryId, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
        "UPDATE deliveries d SET
             status = CASE WHEN $5::bigint IS NULL THEN 'pending' ELSE 'throttled' END,
             slot_at = $4 + held.i * ($5::bigint * interval '1 millisecond'),
             next_attempt_at = coalesce($4 + held.i * ($5::bigint * interval '1 millisecond'), $3),
             task_seq = d.task_seq + 1, updated_at = $3
         FROM (
             SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM deliveries
             WHERE team_id = $1 AND destination_id = $2 AND status = 'held'
         ) AS held
         WHERE d.id = held.id
         RETURNING d.id, d.task_seq, d.slot_at",
    )
    .bind(team)
    .bind(id)
    .bind(now)
    .bind(base)
    .bind(interval.map(|i| i.num_milliseconds()))
    .fetch_all(&mut *tx)
    .await?;
    released.sort();
    if let Some(interval) = interval {
        let taken = i32::try_from(released.len()).unwrap_or(i32::MAX);
        sqlx::query("UPDATE destinations SET next_slot_at = $3 WHERE team_id = $1 AND id = $2")
            .bind(team)
            .bind(id)
            .bind(base + interval * taken)
            .execute(&mut *tx)
            .await?;
    }
    let tasks: Vec<_> = released
        .into_iter()
        .map(|(delivery_id, seq, slot)| {
            let task = DeliveryTask {
                team_id: team.clone(),
                delivery_id,
                seq,
            };
            (task, slot)
        })
        .collect();
    push_deliveries(tx, &tasks).await?;
    Ok(tasks.len())
}

/// Starts the probes that are due: for each open breaker whose cool-down has passed, its
/// oldest held delivery is sent (and only it may be, until its outcome is recorded).
/// Safe in several upkeep processes at once: each change re-checks what it relies on.
/// The system's own upkeep, so it runs across teams; each task carries its team.
#[tracing::instrument(skip_all)]
pub async fn start_probes(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut tx = conn.begin().await?;
    // A probe that settled some other way (a routine fire whose worker died, a delivery
    // deleted with its source) leaves the pointer behind; clear it so another is chosen.
    sqlx::query(
        "UPDATE destinations x SET probe_delivery_id = NULL
         WHERE x.state = 'auto_disabled' AND x.probe_delivery_id IS NOT NULL
           AND NOT EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.id = x.probe_delivery_id
                 AND d.status IN ('pending', 'in_flight', 'throttled')
           )",
    )
    .execute(&mut *tx)
    .await?;
    let probes: Vec<(TeamId, DeliveryId, i32)> = sqlx::query_as(
        "WITH due AS (
             SELECT DISTINCT ON (d.destination_id) d.destination_id, d.id
             FROM destinations x
             JOIN deliveries d ON d.team_id = x.team_id AND d.destination_id = x.id
                 AND d.status = 'held'
             WHERE x.state = 'auto_disabled' AND x.probe_delivery_id IS NULL
               AND x.probe_at <= $1
             ORDER BY d.destination_id, d.id
             LIMIT 100
         ), marked AS (
             UPDATE destinations x SET probe_delivery_id = due.id
             FROM due
             WHERE x.id = due.destination_id AND x.probe_delivery_id IS NULL
               AND x.state = 'auto_disabled'
             RETURNING due.id
         )
         UPDATE deliveries d SET status = 'pending', next_attempt_at = $1,
             task_seq = d.task_seq + 1, updated_at = $1
         FROM marked
         WHERE d.id = marked.id AND d.status = 'held'
         RETURNING d.team_id, d.id, d.task_seq",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let tasks: Vec<_> = probes
        .into_iter()
        .map(|(team_id, delivery_id, seq)| {
            let task = DeliveryTask {
                team_id,
                delivery_id,
                seq,
            };
            (task, None)
        })
        .collect();
    push_deliveries(&mut tx, &tasks).await?;
    tx.commit().await?;
    Ok(tasks.len())
}

/// Replaces the destination's signing secret with `sealed_new`; the current one keeps
/// signing beside it until `overlap_until`.
#[tracing::instrument(skip_all)]
pub async fn rotate_signing_secret(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
    sealed_new: &[u8],
    overlap_until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rotated = sqlx::query(
        "UPDATE destinations SET previous_signing_secret = signing_secret,
             previous_signing_until = $4, signing_secret = $3, updated_at = now()
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .bind(sealed_new)
    .bind(overlap_until)
    .execute(db)
    .await?;
    if rotated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// What the dashboard shows of a destination's health beside its state.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Deliveries waiting for it (paused or disabled).
    pub held: i64,
    pub last_success_at: Option<DateTime<Utc>>,
}

/// Health of every destination of the team.
#[tracing::instrument(skip_all)]
pub async fn health(
    db: impl PgExecutor<'_>,
    team: &TeamId,
) -> Result<std::collections::HashMap<DestinationId, Health>, StoreError> {
    let rows: Vec<(DestinationId, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT d.id,
                (SELECT count(*) FROM deliveries x
                  WHERE x.destination_id = d.id AND x.status = 'held') AS held,
                (SELECT x.updated_at FROM deliveries x
                  WHERE x.team_id = d.team_id AND x.status = 'succeeded' AND x.destination_id = d.id
                  ORDER BY x.id DESC LIMIT 1) AS last_success_at
         FROM destinations d WHERE d.team_id = $1",
    )
    .bind(team)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, held, last_success_at)| {
            let health = Health {
                held,
                last_success_at,
            };
            (id, health)
        })
        .collect())
}

/// Whether the team has a destination of `kind` (`only`: that one destination).
#[tracing::instrument(skip_all)]
pub async fn any_of_kind(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    kind: DestinationKind,
    only: Option<&DestinationId>,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM destinations
                        WHERE team_id = $1 AND kind = $2 AND ($3::text IS NULL OR id = $3))",
    )
    .bind(team)
    .bind(kind.as_str())
    .bind(only)
    .fetch_one(db)
    .await?)
}
