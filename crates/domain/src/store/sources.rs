//! Sources, their sealed secrets and their rejection log.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use crate::ids::{DestinationId, RouteId, SecretId, SourceId, TeamId};
use crate::model::Source;
use crate::providers::{ProviderKind, ProviderSettings};

macro_rules! columns {
    () => {
        "id, team_id, name, provider, token, settings, body_limit, quiet_after_minutes,
         reconcile, reconcile_interval_s, reconcile_lookback_s, created_at, updated_at"
    };
}

team_table!("sources", Source, SourceId, columns!());

/// How many rejections a source keeps.
pub const REJECTIONS_KEPT: i64 = 100;

pub struct NewSource<'a> {
    pub name: &'a str,
    pub provider: ProviderKind,
    pub settings: &'a ProviderSettings,
    pub body_limit: i32,
    pub quiet_after_minutes: Option<i32>,
    pub reconciling: Reconciling,
    pub sealed_secret: Option<Vec<u8>>,
}

/// A source's reconciliation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconciling {
    pub on: bool,
    pub interval_s: i32,
    pub lookback_s: i32,
}

impl Reconciling {
    /// Off, with the interval and lookback it starts with when turned on.
    pub const OFF: Reconciling = Reconciling {
        on: false,
        interval_s: 300,
        lookback_s: 86_400,
    };
}

#[tracing::instrument(skip_all)]
pub async fn insert(
    tx: &mut PgConnection,
    team: &TeamId,
    new: NewSource<'_>,
    token: &str,
) -> Result<Source, StoreError> {
    let source = sqlx::query_as::<_, Source>(concat!(
        "INSERT INTO sources (id, team_id, name, provider, token, settings, body_limit,
                              quiet_after_minutes, reconcile, reconcile_interval_s,
                              reconcile_lookback_s)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
        columns!()
    ))
    .bind(SourceId::generate())
    .bind(team)
    .bind(new.name)
    .bind(new.provider.as_str())
    .bind(token)
    .bind(Json(new.settings))
    .bind(new.body_limit)
    .bind(new.quiet_after_minutes)
    .bind(new.reconciling.on)
    .bind(new.reconciling.interval_s)
    .bind(new.reconciling.lookback_s)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(sealed) = new.sealed_secret {
        sqlx::query(
            "INSERT INTO source_secrets (id, team_id, source_id, ciphertext) VALUES ($1, $2, $3, $4)",
        )
        .bind(SecretId::generate())
        .bind(team)
        .bind(&source.id)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
    }
    Ok(source)
}

#[derive(Debug, Default)]
pub struct SourcePatch {
    pub name: Option<String>,
    pub settings: Option<ProviderSettings>,
    pub body_limit: Option<i32>,
    /// `Some(None)` stops watching for silence.
    pub quiet_after_minutes: Option<Option<i32>>,
    pub reconciling: Option<Reconciling>,
}

#[tracing::instrument(skip_all)]
pub async fn update(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &SourceId,
    patch: SourcePatch,
) -> Result<Source, StoreError> {
    Ok(sqlx::query_as::<_, Source>(concat!(
        "UPDATE sources SET
             name = coalesce($3, name),
             settings = coalesce($4, settings),
             body_limit = coalesce($5, body_limit),
             quiet_after_minutes = CASE WHEN $6 THEN $7 ELSE quiet_after_minutes END,
             reconcile = coalesce($8, reconcile),
             reconcile_interval_s = coalesce($9, reconcile_interval_s),
             reconcile_lookback_s = coalesce($10, reconcile_lookback_s),
             updated_at = now()
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(patch.name)
    .bind(patch.settings.map(Json))
    .bind(patch.body_limit)
    .bind(patch.quiet_after_minutes.is_some())
    .bind(patch.quiet_after_minutes.flatten())
    .bind(patch.reconciling.map(|r| r.on))
    .bind(patch.reconciling.map(|r| r.interval_s))
    .bind(patch.reconciling.map(|r| r.lookback_s))
    .fetch_one(db)
    .await?)
}

/// Everything the data plane needs about the source behind an ingest token. Not scoped by
/// team: the unguessable token is the credential, and it names exactly one source.
pub struct IngestConfig {
    pub source: Source,
    pub retention_days: i32,
    pub sealed_secrets: Vec<Vec<u8>>,
    pub routes: Vec<IngestRoute>,
    /// For links: the team's slug.
    pub team_slug: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IngestRoute {
    pub id: RouteId,
    pub destination_id: DestinationId,
    pub event_types: Vec<String>,
    pub filter: Option<String>,
    pub ordering: Option<Json<crate::model::Ordering>>,
    pub coalescing: Option<Json<crate::model::Coalesce>>,
}

#[tracing::instrument(skip_all)]
pub async fn find_for_ingest(
    db: &mut PgConnection,
    token: &str,
) -> Result<Option<IngestConfig>, StoreError> {
    let Some(source) = sqlx::query_as::<_, Source>(concat!(
        "SELECT ",
        columns!(),
        " FROM sources WHERE token = $1"
    ))
    .bind(token)
    .fetch_optional(&mut *db)
    .await?
    else {
        return Ok(None);
    };
    ingest_config(db, source).await.map(Some)
}

/// What ingest would use for `source`, read afresh: a reconciliation pass routes its
/// synthesized events by it.
#[tracing::instrument(skip_all)]
pub async fn ingest_config_of(
    db: &mut PgConnection,
    team: &TeamId,
    id: &SourceId,
) -> Result<IngestConfig, StoreError> {
    let source = get(&mut *db, team, id).await?;
    ingest_config(db, source).await
}

async fn ingest_config(db: &mut PgConnection, source: Source) -> Result<IngestConfig, StoreError> {
    let (retention_days, team_slug) =
        sqlx::query_as::<_, (i32, String)>("SELECT retention_days, slug FROM teams WHERE id = $1")
            .bind(&source.team_id)
            .fetch_one(&mut *db)
            .await?;
    let sealed_secrets = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT ciphertext FROM source_secrets WHERE team_id = $1 AND source_id = $2
         ORDER BY id DESC LIMIT 2",
    )
    .bind(&source.team_id)
    .bind(&source.id)
    .fetch_all(&mut *db)
    .await?;
    let routes = sqlx::query_as::<_, IngestRoute>(
        "SELECT id, destination_id, event_types, filter, ordering, coalescing FROM routes
         WHERE team_id = $1 AND source_id = $2 AND NOT paused ORDER BY id",
    )
    .bind(&source.team_id)
    .bind(&source.id)
    .fetch_all(&mut *db)
    .await?;
    Ok(IngestConfig {
        source,
        retention_days,
        sealed_secrets,
        routes,
        team_slug,
    })
}

impl IngestConfig {
    /// The routes compiled as ingest matches them; a route that no longer compiles
    /// carries its reason, and its deliveries fail with it.
    pub fn compiled_routes(&self) -> Vec<crate::routing::CompiledRoute> {
        self.routes
            .iter()
            .map(|route| {
                crate::routing::CompiledRoute::compile(
                    route.id.clone(),
                    route.destination_id.clone(),
                    &route.event_types,
                    route.filter.as_deref(),
                )
                .sequenced(
                    route.ordering.as_ref().map(|o| o.0.clone()),
                    route.coalescing.as_ref().map(|c| c.0.clone()),
                )
            })
            .collect()
    }
}

/// How many secrets a source holds at once: the current one and, during a rotation, the
/// next (or the previous).
pub const MAX_SECRETS: i64 = 2;

/// A secret as the API shows it: never its value.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SecretInfo {
    pub id: SecretId,
    pub created_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all)]
pub async fn secrets(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    source: &SourceId,
) -> Result<Vec<SecretInfo>, StoreError> {
    Ok(sqlx::query_as::<_, SecretInfo>(
        "SELECT id, created_at FROM source_secrets
         WHERE team_id = $1 AND source_id = $2 ORDER BY id DESC",
    )
    .bind(team)
    .bind(source)
    .fetch_all(db)
    .await?)
}

/// Adds a secret for a rotation; refused while the source already holds two. Locks the
/// source so two concurrent additions cannot both pass the count.
#[tracing::instrument(skip_all)]
pub async fn add_secret(
    tx: &mut PgConnection,
    team: &TeamId,
    source: &SourceId,
    sealed: &[u8],
) -> Result<SecretInfo, StoreError> {
    sqlx::query("SELECT id FROM sources WHERE team_id = $1 AND id = $2 FOR UPDATE")
        .bind(team)
        .bind(source)
        .fetch_one(&mut *tx)
        .await?;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM source_secrets WHERE team_id = $1 AND source_id = $2",
    )
    .bind(team)
    .bind(source)
    .fetch_one(&mut *tx)
    .await?;
    if held >= MAX_SECRETS {
        return Err(StoreError::Conflict(format!(
            "the source already holds {MAX_SECRETS} secrets; retire one first"
        )));
    }
    Ok(sqlx::query_as::<_, SecretInfo>(
        "INSERT INTO source_secrets (id, team_id, source_id, ciphertext) VALUES ($1, $2, $3, $4)
         RETURNING id, created_at",
    )
    .bind(SecretId::generate())
    .bind(team)
    .bind(source)
    .bind(sealed)
    .fetch_one(&mut *tx)
    .await?)
}

/// Retires a secret; a source's last secret stays (add the next one first). On the
/// caller's transaction, which an error leaves to be rolled back.
#[tracing::instrument(skip_all)]
pub async fn retire_secret(
    tx: &mut PgConnection,
    team: &TeamId,
    source: &SourceId,
    secret: &SecretId,
) -> Result<(), StoreError> {
    sqlx::query("SELECT id FROM sources WHERE team_id = $1 AND id = $2 FOR UPDATE")
        .bind(team)
        .bind(source)
        .fetch_one(&mut *tx)
        .await?;
    let remaining: Option<i64> = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM source_secrets WHERE team_id = $1 AND source_id = $2 AND id = $3
             RETURNING id
         )
         SELECT count(*) FROM source_secrets
         WHERE team_id = $1 AND source_id = $2 AND EXISTS (SELECT 1 FROM gone)
         GROUP BY source_id",
    )
    .bind(team)
    .bind(source)
    .bind(secret)
    .fetch_optional(&mut *tx)
    .await?;
    match remaining {
        None => Err(StoreError::NotFound),
        // The count is taken before the delete: one left means this was the last.
        Some(n) if n <= 1 => Err(StoreError::Conflict(
            "this is the source's only secret; add the new one before retiring it".to_owned(),
        )),
        Some(_) => Ok(()),
    }
}

/// The most of a refused request's body that is kept.
pub const REJECTED_BODY_KEPT: usize = 4096;

/// Notes why a request was refused and what it looked like, keeping only the newest
/// `REJECTIONS_KEPT`; past the team's threshold within ten minutes, raises an alert.
#[tracing::instrument(skip_all)]
pub async fn record_rejection(
    db: &mut PgConnection,
    team: &TeamId,
    source: &SourceId,
    rejection: &Rejection,
) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut tx = db.begin().await?;
    sqlx::query(
        "WITH added AS (
             INSERT INTO source_rejections
                 (team_id, source_id, received_at, reason, headers, body_excerpt)
             VALUES ($1, $2, $3, $4, $6, $7)
         )
         DELETE FROM source_rejections WHERE team_id = $1 AND source_id = $2 AND id <= (
             SELECT id FROM source_rejections WHERE source_id = $2
             ORDER BY id DESC OFFSET $5 - 1 LIMIT 1
         )",
    )
    .bind(team)
    .bind(source)
    .bind(rejection.received_at)
    .bind(&rejection.reason)
    .bind(REJECTIONS_KEPT)
    .bind(&rejection.headers)
    .bind(&rejection.body_excerpt)
    .execute(&mut *tx)
    .await?;
    let settings = super::alerts::settings(&mut *tx, team).await?;
    if settings.source_rejecting {
        let recent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM source_rejections
             WHERE team_id = $1 AND source_id = $2 AND received_at > $3",
        )
        .bind(team)
        .bind(source)
        .bind(rejection.received_at - super::alerts::REJECTION_WINDOW)
        .fetch_one(&mut *tx)
        .await?;
        if recent >= i64::from(settings.rejection_threshold) {
            let alert = super::queue::AlertTask {
                team_id: team.clone(),
                destination_id: None,
                alert: super::queue::Alert::SourceRejecting {
                    source_id: source.clone(),
                    count: recent,
                    reason: rejection.reason.clone(),
                },
            };
            let kind = super::alerts::AlertKind::SourceRejecting;
            super::alerts::raise(
                &mut tx,
                kind,
                source.as_str(),
                &alert,
                rejection.received_at,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Rejection {
    pub received_at: DateTime<Utc>,
    pub reason: String,
    /// The request's headers, lower-cased, with credentials shown as `[redacted]`.
    #[schema(value_type = Object)]
    pub headers: Option<serde_json::Value>,
    /// The first 4 KiB of the body, as text (invalid UTF-8 replaced).
    pub body_excerpt: Option<String>,
}

impl Rejection {
    /// A rejection of a request with these (already redacted) headers and this body.
    pub fn new(reason: String, headers: serde_json::Value, body: &[u8]) -> Rejection {
        let excerpt = &body[..body.len().min(REJECTED_BODY_KEPT)];
        Rejection {
            received_at: Utc::now(),
            reason,
            headers: Some(headers),
            // PostgreSQL text cannot hold NUL.
            body_excerpt: Some(String::from_utf8_lossy(excerpt).replace('\0', "\u{fffd}")),
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn rejections(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    source: &SourceId,
) -> Result<Vec<Rejection>, StoreError> {
    Ok(sqlx::query_as::<_, Rejection>(
        "SELECT received_at, reason, headers, body_excerpt FROM source_rejections
         WHERE team_id = $1 AND source_id = $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(team)
    .bind(source)
    .bind(REJECTIONS_KEPT)
    .fetch_all(db)
    .await?)
}

/// A source with how busy it is: for the sources list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Activity {
    #[sqlx(flatten)]
    pub source: Source,
    pub events_24h: i64,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Created before its sender showed the secret, which was not pasted yet.
    pub awaiting_secret: bool,
}

/// The team's sources by name, each with its event count over the day before `now` and
/// its latest event.
#[tracing::instrument(skip_all)]
pub async fn with_activity(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    now: DateTime<Utc>,
) -> Result<Vec<Activity>, StoreError> {
    Ok(sqlx::query_as::<_, Activity>(
        "SELECT s.id, s.team_id, s.name, s.provider, s.token, s.settings, s.body_limit,
                s.quiet_after_minutes, s.reconcile, s.reconcile_interval_s,
                s.reconcile_lookback_s, s.created_at, s.updated_at,
                (SELECT count(*) FROM events e
                  WHERE e.source_id = s.id AND e.received_at > $2)
                  AS events_24h,
                (SELECT e.received_at FROM events e
                  WHERE e.source_id = s.id ORDER BY e.id DESC LIMIT 1) AS last_event_at,
                (s.provider <> 'none' AND NOT EXISTS (
                    SELECT 1 FROM source_secrets x WHERE x.source_id = s.id)) AS awaiting_secret
         FROM sources s WHERE s.team_id = $1 ORDER BY lower(s.name), s.id",
    )
    .bind(team)
    .bind(now - chrono::Duration::hours(24))
    .fetch_all(db)
    .await?)
}

/// Deletes what the source's events leave in other tables (deliveries, their attempts,
/// fetched objects): nothing references a partitioned table, so its deletion reaches
/// only the events. Runs before [`delete`], in its transaction.
#[tracing::instrument(skip_all)]
pub async fn delete_dependants(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &SourceId,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH source_events AS (
             SELECT id FROM events WHERE team_id = $1 AND source_id = $2
         ), doomed AS (
             SELECT id FROM deliveries
             WHERE team_id = $1 AND event_id IN (SELECT id FROM source_events)
         ), attempts_gone AS (
             DELETE FROM attempts WHERE team_id = $1 AND delivery_id IN (SELECT id FROM doomed)
         ), objects_gone AS (
             DELETE FROM event_objects
             WHERE team_id = $1 AND event_id IN (SELECT id FROM source_events)
         )
         DELETE FROM deliveries WHERE team_id = $1 AND id IN (SELECT id FROM doomed)",
    )
    .bind(team)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}
