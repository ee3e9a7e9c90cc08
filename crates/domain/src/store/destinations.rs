//! Destinations and their sealed signing secrets.

use sqlx::PgExecutor;

use super::StoreError;
use crate::delivery::DestinationKind;
use crate::ids::{DestinationId, TeamId};
use crate::model::Destination;

macro_rules! columns {
    () => {
        "id, team_id, name, kind, state, state_reason, paused_until, url, created_at, updated_at"
    };
}

team_table!("destinations", Destination, DestinationId, columns!());

#[tracing::instrument(skip_all)]
pub async fn insert(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    name: &str,
    kind: DestinationKind,
    url: &str,
    sealed_signing_secret: &[u8],
) -> Result<Destination, StoreError> {
    Ok(sqlx::query_as::<_, Destination>(concat!(
        "INSERT INTO destinations (id, team_id, name, kind, url, signing_secret)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        columns!()
    ))
    .bind(DestinationId::generate())
    .bind(team)
    .bind(name)
    .bind(kind.as_str())
    .bind(url)
    .bind(sealed_signing_secret)
    .fetch_one(db)
    .await?)
}

#[derive(Debug, Default)]
pub struct DestinationPatch {
    pub name: Option<String>,
    pub url: Option<String>,
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
             url = coalesce($4, url),
             updated_at = now()
         WHERE team_id = $1 AND id = $2 RETURNING ",
        columns!()
    ))
    .bind(team)
    .bind(id)
    .bind(patch.name)
    .bind(patch.url)
    .fetch_one(db)
    .await?)
}
