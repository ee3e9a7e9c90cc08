//! The Anthropic object fetched for an event, kept with it: every enriching route of the
//! event renders with the same object, and a replay sends what was first sent.

use serde_json::Value;
use sqlx::PgExecutor;

use super::StoreError;
use crate::ids::{EventId, TeamId};

/// What enrichment found for one event.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Enrichment {
    /// The object as Anthropic answered it; null when there was nothing to fetch (a
    /// `*.deleted` event) or Anthropic no longer has it (404).
    pub object: Option<Value>,
    /// Why the object is null, shown on the event and on the attempt.
    pub note: Option<String>,
}

/// What was fetched for the event, if anything was.
#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    event: &EventId,
) -> Result<Option<Enrichment>, StoreError> {
    Ok(sqlx::query_as::<_, Enrichment>(
        "SELECT object, note FROM event_objects WHERE team_id = $1 AND event_id = $2",
    )
    .bind(team)
    .bind(event)
    .fetch_optional(db)
    .await?)
}

/// Keeps `found` for the event unless something was kept first (two processes fetching
/// at once), and answers what is kept: every route renders with the same object.
#[tracing::instrument(skip_all)]
pub async fn keep(
    db: impl PgExecutor<'_> + Copy,
    team: &TeamId,
    event: &EventId,
    found: &Enrichment,
) -> Result<Enrichment, StoreError> {
    let kept = sqlx::query_as::<_, Enrichment>(
        "INSERT INTO event_objects (event_id, team_id, object, note)
         SELECT id, team_id, $3, $4 FROM events WHERE team_id = $1 AND id = $2
         ON CONFLICT (event_id) DO NOTHING
         RETURNING object, note",
    )
    .bind(team)
    .bind(event)
    .bind(&found.object)
    .bind(&found.note)
    .fetch_optional(db)
    .await?;
    match kept {
        Some(kept) => Ok(kept),
        // Kept first by another, or the event is gone (retention): what is there, else
        // what was found.
        None => Ok(get(db, team, event).await?.unwrap_or_else(|| found.clone())),
    }
}
