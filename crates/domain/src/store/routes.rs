//! Routes.

use sqlx::PgExecutor;
use sqlx::types::Json;

use super::StoreError;
use crate::ids::{DestinationId, RouteId, SourceId, TeamId};
use crate::model::{Coalesce, Ordering, Route};

macro_rules! columns {
    () => {
        "id, team_id, name, source_id, destination_id, event_types, filter, template, subject,
         paused, enrich, ordering, coalescing, created_at, updated_at"
    };
}

team_table!("routes", Route, RouteId, columns!());

pub struct NewRoute<'a> {
    pub name: &'a str,
    pub source_id: &'a SourceId,
    pub destination_id: &'a DestinationId,
    pub event_types: Vec<String>,
    pub filter: Option<String>,
    pub template: Option<String>,
    pub subject: Option<String>,
    pub paused: bool,
    pub enrich: bool,
    pub ordering: Option<Ordering>,
    pub coalesce: Option<Coalesce>,
}

/// Inserts a route whose source and destination both belong to `team`; `NotFound` when
/// either does not.
#[tracing::instrument(skip_all)]
pub async fn insert(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    new: NewRoute<'_>,
) -> Result<Route, StoreError> {
    Ok(sqlx::query_as::<_, Route>(concat!(
        "INSERT INTO routes (id, team_id, name, source_id, destination_id, event_types, paused,
                             filter, template, subject, enrich, ordering, coalescing)
         SELECT $1, $2, $3, s.id, d.id, $6, $7, $8, $9, $10, $11, $12, $13
         FROM sources s, destinations d
         WHERE s.team_id = $2 AND s.id = $4 AND d.team_id = $2 AND d.id = $5
         RETURNING ",
        columns!()
    ))
    .bind(RouteId::generate())
    .bind(team)
    .bind(new.name)
    .bind(new.source_id)
    .bind(new.destination_id)
    .bind(new.event_types)
    .bind(new.paused)
    .bind(new.filter)
    .bind(new.template)
    .bind(new.subject)
    .bind(new.enrich)
    .bind(new.ordering.map(Json))
    .bind(new.coalesce.map(Json))
    .fetch_one(db)
    .await?)
}

/// What a PATCH changes; for the templates, `Some(None)` clears.
#[derive(Debug, Default)]
pub struct RoutePatch {
    pub name: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub paused: Option<bool>,
    pub filter: Option<Option<String>>,
    pub template: Option<Option<String>>,
    pub subject: Option<Option<String>>,
    pub enrich: Option<bool>,
    /// `Some(None)` stops ordering.
    pub ordering: Option<Option<Ordering>>,
    /// `Some(None)` stops coalescing.
    pub coalesce: Option<Option<Coalesce>>,
}

#[tracing::instrument(skip_all)]
pub async fn update(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &RouteId,
    patch: RoutePatch,
) -> Result<Route, StoreError> {
    Ok(sqlx::query_as::<_, Route>(concat!(
        "UPDATE routes SET
             name = coalesce($3, name),
             event_types = coalesce($4, event_types),
             paused = coalesce($5, paused),
             filter = CASE WHEN $6 THEN $7 ELSE filter END,
             template = CASE WHEN $8 THEN $9 ELSE template END,
             subject = CASE WHEN $10 THEN $11 ELSE subject END,
             enrich = coalesce($12, enrich),
             ordering = CASE WHEN $13 THEN $14 ELSE ordering END,
             coalescing = CASE WHEN $15 THEN $16 ELSE coalescing END,
             updated_at = now()
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(patch.name)
    .bind(patch.event_types)
    .bind(patch.paused)
    .bind(patch.filter.is_some())
    .bind(patch.filter.flatten())
    .bind(patch.template.is_some())
    .bind(patch.template.flatten())
    .bind(patch.subject.is_some())
    .bind(patch.subject.flatten())
    .bind(patch.enrich)
    .bind(patch.ordering.is_some())
    .bind(patch.ordering.flatten().map(Json))
    .bind(patch.coalesce.is_some())
    .bind(patch.coalesce.flatten().map(Json))
    .fetch_one(db)
    .await?)
}

/// Every route of one source, however many.
#[tracing::instrument(skip_all)]
pub async fn for_source(
    db: impl sqlx::PgExecutor<'_>,
    team: &TeamId,
    source: &crate::ids::SourceId,
) -> Result<Vec<Route>, StoreError> {
    Ok(sqlx::query_as::<_, Route>(concat!(
        "SELECT ",
        columns!(),
        " FROM routes WHERE team_id = $1 AND source_id = $2 ORDER BY id"
    ))
    .bind(team)
    .bind(source)
    .fetch_all(db)
    .await?)
}
