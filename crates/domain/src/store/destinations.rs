//! Destinations and their sealed signing secrets.

use sqlx::PgExecutor;

use super::{StoreError, fetch_limit, page};
use crate::delivery::DestinationKind;
use crate::ids::{DestinationId, TeamId};
use crate::model::{Destination, Page, PageRequest};

macro_rules! columns {
    () => {
        "id, team_id, name, kind, state, state_reason, paused_until, url, created_at, updated_at"
    };
}

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

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    req: &PageRequest,
) -> Result<Page<Destination>, StoreError> {
    let rows = sqlx::query_as::<_, Destination>(concat!(
        "SELECT ",
        columns!(),
        " FROM destinations
         WHERE team_id = $1 AND ($2::text IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(team)
    .bind(&req.cursor)
    .bind(fetch_limit(req))
    .fetch_all(db)
    .await?;
    Ok(page(rows, req, |d| d.id.to_string()))
}

#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
) -> Result<Destination, StoreError> {
    Ok(sqlx::query_as::<_, Destination>(concat!(
        "SELECT ",
        columns!(),
        " FROM destinations WHERE team_id = $1 AND id = $2"
    ))
    .bind(team)
    .bind(id)
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

#[tracing::instrument(skip_all)]
pub async fn delete(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    id: &DestinationId,
) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM destinations WHERE team_id = $1 AND id = $2")
        .bind(team)
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
