//! Routes.

use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::{DestinationId, RouteId, SourceId, TeamId};
use crate::model::Route;

macro_rules! columns {
    () => {
        "id, team_id, name, source_id, destination_id, event_types, paused, created_at, updated_at"
    };
}

team_table!("routes", Route, RouteId, columns!());

pub struct NewRoute<'a> {
    pub name: &'a str,
    pub source_id: &'a SourceId,
    pub destination_id: &'a DestinationId,
    pub event_types: Vec<String>,
    pub paused: bool,
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
        "INSERT INTO routes (id, team_id, name, source_id, destination_id, event_types, paused)
         SELECT $1, $2, $3, s.id, d.id, $6, $7
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
    .fetch_one(db)
    .await?)
}

#[derive(Debug, Default)]
pub struct RoutePatch {
    pub name: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub paused: Option<bool>,
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
             updated_at = now()
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(patch.name)
    .bind(patch.event_types)
    .bind(patch.paused)
    .fetch_one(db)
    .await?)
}
