//! Destinations: their configuration and sealed secrets (`destinations`), and the state
//! delivering changes (`destination_runtime`, one row each, made by a trigger with the
//! destination). A destination is read as the two joined; configuration changes notify
//! the ingress caches, runtime changes do not.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use super::alerts::{self, AlertKind};
use super::queue::notify_deliveries;
use crate::delivery::limits::Limits;
use crate::delivery::{DestinationKind, Transition};
use crate::ids::{DeliveryId, DestinationId, TeamId};
use crate::model::{Destination, DestinationConfig};

macro_rules! columns {
    () => {
        "id, team_id, name, config, state, state_reason, paused_until, consecutive_failures,
         probe_at, settings, created_at, updated_at"
    };
}

/// A destination with its runtime row.
macro_rules! joined {
    () => {
        "destinations JOIN destination_runtime USING (team_id, id)"
    };
}

team_table!(
    "destinations",
    Destination,
    DestinationId,
    columns!(),
    joined!()
);

/// A destination to create; secrets arrive sealed.
#[derive(Debug)]
pub struct NewDestination<'a> {
    pub name: &'a str,
    pub config: &'a DestinationConfig,
    pub limits: &'a Limits,
    pub sealed_signing_secret: &'a [u8],
    pub sealed_credentials: Option<&'a [u8]>,
}

#[tracing::instrument(skip_all)]
pub async fn insert(
    tx: &mut PgConnection,
    team: &TeamId,
    new: NewDestination<'_>,
) -> Result<Destination, StoreError> {
    let id = DestinationId::generate();
    sqlx::query(
        "INSERT INTO destinations
             (id, team_id, name, kind, config, settings, signing_secret, sealed_credentials)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(team)
    .bind(new.name)
    .bind(new.config.kind().as_str())
    .bind(Json(new.config))
    .bind(Json(new.limits))
    .bind(new.sealed_signing_secret)
    .bind(new.sealed_credentials)
    .execute(&mut *tx)
    .await?;
    get(&mut *tx, team, &id).await
}

/// A destination's new shape, whole: the caller read the current one under
/// [`lock_with_credentials`] and changed what the request named.
#[derive(Debug)]
pub struct DestinationPatch {
    pub name: Option<String>,
    pub config: DestinationConfig,
    pub limits: Limits,
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
        ", sealed_credentials FROM ",
        joined!(),
        " WHERE team_id = $1 AND id = $2 FOR UPDATE OF destinations"
    ))
    .bind(team)
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok((row.destination, row.sealed_credentials))
}

#[tracing::instrument(skip_all)]
pub async fn update(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
    patch: DestinationPatch,
) -> Result<Destination, StoreError> {
    let updated = sqlx::query(
        "UPDATE destinations SET
             name = coalesce($3, name),
             config = $4,
             settings = $5,
             sealed_credentials = $6,
             updated_at = now()
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .bind(patch.name)
    .bind(Json(patch.config))
    .bind(Json(patch.limits))
    .bind(patch.sealed_credentials)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    get(&mut *tx, team, id).await
}

/// A person pauses the destination: nothing more is sent, and its deliveries are held
/// as their turn comes, until it is resumed.
#[tracing::instrument(skip_all)]
pub async fn pause(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE destination_runtime SET state = 'paused', state_reason = 'paused by a person',
             paused_until = NULL
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A person (or a recovery) makes the destination active again: whatever paused,
/// disabled or slowed it is cleared, and its held deliveries are released in the order
/// they were created (a probe waiting for its cool-down goes at once too). A later
/// disabling is news again, however soon it comes: its alert is not grouped with one
/// sent before. Under a rate
/// limit each gets its own send slot in that order (so they also arrive in it);
/// otherwise all go at once. Returns how many were released.
#[tracing::instrument(skip_all)]
pub async fn resume(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &DestinationId,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let probe: Option<DeliveryId> = sqlx::query_scalar(
        "UPDATE destination_runtime r SET state = 'active', state_reason = NULL,
             paused_until = NULL, consecutive_failures = 0, cooldown_seconds = 0,
             probe_at = NULL, probe_delivery_id = NULL
         FROM (SELECT probe_delivery_id FROM destination_runtime
               WHERE team_id = $1 AND id = $2 FOR UPDATE) AS before
         WHERE r.team_id = $1 AND r.id = $2
         RETURNING before.probe_delivery_id",
    )
    .bind(team)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let limits: Json<Limits> =
        sqlx::query_scalar("SELECT settings FROM destinations WHERE team_id = $1 AND id = $2")
            .bind(team)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let interval = limits.0.interval();
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
    // Ids sort by creation time; the i-th held delivery gets slot base + i × interval. A
    // probe waiting for its cool-down is released with them, in its place, unless a claim
    // holds it right now: that claim waits for this transaction's lock on the runtime
    // row, then sees the destination active and sends it. (Held deliveries are locked
    // only by transactions that hold that lock first, so none is passed over.)
    let released = sqlx::query(
        "UPDATE deliveries d SET
             status = CASE WHEN $5::bigint IS NULL THEN $7 ELSE $8 END,
             slot_at = $4 + held.i * ($5::bigint * interval '1 millisecond'),
             next_attempt_at = coalesce($4 + held.i * ($5::bigint * interval '1 millisecond'), $3),
             updated_at = $3
         FROM (
             SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM (
                 SELECT id FROM deliveries
                 WHERE team_id = $1 AND destination_id = $2
                   AND (status = 'held' OR (id = $6 AND status = 'pending'))
                   AND status = ANY($9)
                 ORDER BY id
                 FOR UPDATE SKIP LOCKED
             ) AS waiting
         ) AS held
         WHERE d.id = held.id",
    )
    .bind(team)
    .bind(id)
    .bind(now)
    .bind(base)
    .bind(interval.map(|i| i.num_milliseconds()))
    .bind(&probe)
    .bind(Transition::Release.to().as_str())
    .bind(Transition::ReleaseIntoSlots.to().as_str())
    // Both moves leave the same states.
    .bind(Transition::Release.from_names())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if let Some(interval) = interval {
        let taken = i32::try_from(released).unwrap_or(i32::MAX);
        sqlx::query(
            "UPDATE destination_runtime SET next_slot_at = $3 WHERE team_id = $1 AND id = $2",
        )
        .bind(team)
        .bind(id)
        .bind(base + interval * taken)
        .execute(&mut *tx)
        .await?;
    }
    alerts::forget(&mut *tx, team, AlertKind::DestinationDisabled, id.as_str()).await?;
    if released > 0 {
        notify_deliveries(&mut *tx).await?;
    }
    Ok(usize::try_from(released).unwrap_or(usize::MAX))
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

/// Deletes the attempts of the destination's deliveries, which its deletion takes
/// (attempts are partitioned, so nothing cascades to them). Runs before `delete`, in
/// its transaction.
#[tracing::instrument(skip_all)]
pub async fn delete_attempts(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM attempts WHERE team_id = $1 AND delivery_id IN (
             SELECT id FROM deliveries WHERE team_id = $1 AND destination_id = $2
         )",
    )
    .bind(team)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}
