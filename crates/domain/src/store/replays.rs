//! Bulk replays: count and sample what a filter selects, record the request, and replay
//! it a batch at a time. Each batch is one transaction that moves the replay's cursor,
//! so a job that dies resumes after the last batch it committed, and a cancelled replay
//! stops before its next one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use super::queue::notify_deliveries;
use crate::delivery::{DeliveryStatus, Transition};
use crate::ids::{DeliveryId, DestinationId, ReplayId, RouteId, TeamId};
use crate::model::Delivery;

/// Which deliveries a bulk replay takes: settled ones of one status, optionally of one
/// route or destination, created within a time range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayFilter {
    /// `failed` (the default), `unknown_outcome`, `cancelled` or `succeeded`.
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    #[schema(value_type = Option<String>)]
    pub route_id: Option<RouteId>,
    #[schema(value_type = Option<String>)]
    pub destination_id: Option<DestinationId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Replay {
    #[schema(value_type = String)]
    pub id: ReplayId,
    #[serde(skip)]
    pub team_id: TeamId,
    #[schema(value_type = ReplayFilter)]
    pub filter: Json<ReplayFilter>,
    /// How many deliveries matched when the replay was asked for.
    pub total: i32,
    /// How many have been replayed.
    pub done: i32,
    /// `running`, `done` or `cancelled`.
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The deliveries `filter` selects, oldest first, after `after`, created by `before`.
/// `$1` team, `$2` status, `$3` route, `$4` destination, `$5` since, `$6` until, `$7`
/// after, `$8` created no later than.
const MATCHING: &str = "team_id = $1 AND status = $2
    AND ($3::text IS NULL OR route_id = $3)
    AND ($4::text IS NULL OR destination_id = $4)
    AND ($5::timestamptz IS NULL OR created_at >= $5)
    AND ($6::timestamptz IS NULL OR created_at < $6)
    AND ($7::text IS NULL OR id > $7)
    AND created_at <= $8";

macro_rules! bind_filter {
    ($query:expr, $team:expr, $filter:expr, $after:expr, $before:expr) => {
        $query
            .bind($team)
            .bind($filter.status.as_str())
            .bind(&$filter.route_id)
            .bind(&$filter.destination_id)
            .bind($filter.since)
            .bind($filter.until)
            .bind($after)
            .bind($before)
    };
}

/// How many deliveries the filter selects now.
#[tracing::instrument(skip_all)]
pub async fn count(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &ReplayFilter,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let sql = format!("SELECT count(*) FROM deliveries WHERE {MATCHING}");
    let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
    Ok(bind_filter!(query, team, filter, None::<&str>, now)
        .fetch_one(db)
        .await?)
}

/// The newest deliveries the filter selects, for a person to check before confirming.
#[tracing::instrument(skip_all)]
pub async fn sample(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    filter: &ReplayFilter,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {} FROM deliveries WHERE {MATCHING} ORDER BY id DESC LIMIT $9",
        super::deliveries::COLUMNS
    );
    let query = sqlx::query_as::<_, Delivery>(sqlx::AssertSqlSafe(sql));
    Ok(bind_filter!(query, team, filter, None::<&str>, now)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

const REPLAY_COLUMNS: &str =
    "id, team_id, filter, total, done, status, created_by, created_at, finished_at";

/// Records a bulk replay of what `filter` selects now (`total` of them).
#[tracing::instrument(skip_all)]
pub async fn create(
    tx: &mut PgConnection,
    team: &TeamId,
    filter: &ReplayFilter,
    total: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Replay, StoreError> {
    let sql = format!(
        "INSERT INTO replays (id, team_id, filter, total, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {REPLAY_COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Replay>(sqlx::AssertSqlSafe(sql))
        .bind(ReplayId::generate())
        .bind(team)
        .bind(Json(filter))
        .bind(i32::try_from(total).unwrap_or(i32::MAX))
        .bind(actor)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?)
}

#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &ReplayId,
) -> Result<Replay, StoreError> {
    let sql = format!("SELECT {REPLAY_COLUMNS} FROM replays WHERE team_id = $1 AND id = $2");
    Ok(sqlx::query_as::<_, Replay>(sqlx::AssertSqlSafe(sql))
        .bind(team)
        .bind(id)
        .fetch_one(db)
        .await?)
}

/// The team's latest bulk replays.
#[tracing::instrument(skip_all)]
pub async fn latest(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    limit: i64,
) -> Result<Vec<Replay>, StoreError> {
    let sql = format!(
        "SELECT {REPLAY_COLUMNS} FROM replays WHERE team_id = $1 ORDER BY id DESC LIMIT $2"
    );
    Ok(sqlx::query_as::<_, Replay>(sqlx::AssertSqlSafe(sql))
        .bind(team)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// Stops a running replay before its next batch. `Conflict` when it already ended.
#[tracing::instrument(skip_all)]
pub async fn cancel(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &ReplayId,
    now: DateTime<Utc>,
) -> Result<Replay, StoreError> {
    let current = get(&mut *tx, team, id).await?;
    if current.status != "running" {
        return Err(StoreError::Conflict(format!(
            "this replay is {} already",
            current.status
        )));
    }
    // A batch may finish the replay meanwhile: only a running one becomes cancelled.
    let sql = format!(
        "UPDATE replays SET status = 'cancelled', finished_at = $3
         WHERE team_id = $1 AND id = $2 AND status = 'running' RETURNING {REPLAY_COLUMNS}"
    );
    sqlx::query_as::<_, Replay>(sqlx::AssertSqlSafe(sql))
        .bind(team)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict("this replay has ended already".to_owned()))
}

/// What one batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More may follow.
    Replayed(u32),
    /// The replay is over (done, cancelled, or gone).
    Finished,
}

/// Replays the next `batch` deliveries of a running replay on `tx` (waiting for any that
/// another transaction holds, so none is passed over): each is set
/// `pending` with a fresh series, due at once (as a single replay does). The replay's
/// cursor and count move in the same transaction.
#[tracing::instrument(skip_all)]
pub async fn step(
    tx: &mut PgConnection,
    team: &TeamId,
    id: &ReplayId,
    batch: i64,
    now: DateTime<Utc>,
) -> Result<Step, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        filter: Json<ReplayFilter>,
        status: String,
        cursor: Option<String>,
        created_at: DateTime<Utc>,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT filter, status, cursor, created_at FROM replays
         WHERE team_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(team)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Step::Finished);
    };
    if row.status != "running" {
        return Ok(Step::Finished);
    }
    super::retention::replays_may_go(tx).await?;
    let sql = format!(
        "WITH chosen AS (
             SELECT id FROM deliveries WHERE {MATCHING}
             ORDER BY id LIMIT $9 FOR UPDATE
         )
         UPDATE deliveries d SET status = $11, replay_count = replay_count + 1,
             series_attempts = 0, next_attempt_at = $10,
             last_error = NULL, updated_at = $10
         FROM chosen WHERE d.id = chosen.id AND d.status = ANY($12)
         RETURNING d.id"
    );
    let query = sqlx::query_scalar::<_, DeliveryId>(sqlx::AssertSqlSafe(sql));
    let mut replayed = bind_filter!(query, team, row.filter.0, &row.cursor, row.created_at)
        .bind(batch)
        .bind(now)
        .bind(Transition::Replay.to().as_str())
        .bind(Transition::Replay.from_names())
        .fetch_all(&mut *tx)
        .await?;
    replayed.sort();
    if !replayed.is_empty() {
        super::rollups::touch(tx, team, &replayed).await?;
        notify_deliveries(&mut *tx).await?;
    }
    let n = replayed.len();
    let last = replayed.last().map(ToString::to_string).or(row.cursor);
    let finished = (n as i64) < batch;
    sqlx::query(
        "UPDATE replays SET done = done + $3, cursor = $4,
             status = CASE WHEN $5 THEN 'done' ELSE status END,
             finished_at = CASE WHEN $5 THEN $6 ELSE finished_at END
         WHERE team_id = $1 AND id = $2",
    )
    .bind(team)
    .bind(id)
    .bind(i32::try_from(n).unwrap_or(i32::MAX))
    .bind(last)
    .bind(finished)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(if finished {
        Step::Finished
    } else {
        Step::Replayed(u32::try_from(n).unwrap_or(u32::MAX))
    })
}
