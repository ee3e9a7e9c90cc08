//! Upstream health: a source with `quiet_after_minutes` is watched for silence. Once it
//! has received events and then gets none for that long it is recorded as quiet (one
//! row in `source_quiet`, so one alert across every worker), and the row goes when
//! events flow again. "Last event" is read from the events themselves, by the
//! `(source_id, received_at)` index: ingest never writes to `sources` for it. Test events
//! sent from the dashboard do not count: they say nothing about the sender.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::StoreError;
use crate::ids::{SourceId, TeamId};

/// A source that just went quiet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Quiet {
    pub team_id: TeamId,
    pub source_id: SourceId,
    pub minutes: i32,
    pub last_event_at: DateTime<Utc>,
}

/// A quiet source whose events flow again.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Flowing {
    pub team_id: TeamId,
    pub source_id: SourceId,
    pub since: DateTime<Utc>,
}

/// How a source's sender is doing.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Health {
    /// When it last sent an event.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Watched and gone quiet: since when.
    pub quiet_since: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all)]
pub async fn of_source(
    db: impl PgExecutor<'_>,
    team: &TeamId,
    source: &SourceId,
) -> Result<Health, StoreError> {
    Ok(sqlx::query_as::<_, Health>(
        "SELECT (SELECT max(received_at) FROM events
                  WHERE source_id = s.id AND team_id = s.team_id AND NOT test) AS last_event_at,
                (SELECT since FROM source_quiet q WHERE q.source_id = s.id) AS quiet_since
         FROM sources s WHERE s.team_id = $1 AND s.id = $2",
    )
    .bind(team)
    .bind(source)
    .fetch_optional(db)
    .await?
    .unwrap_or_default())
}

/// Records every watched source that has gone quiet by `now` and was not yet known to
/// be; those are the ones to tell the team about.
#[tracing::instrument(skip_all)]
pub async fn gone_quiet(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<Quiet>, StoreError> {
    Ok(sqlx::query_as::<_, Quiet>(
        "WITH silent AS (
             SELECT s.team_id, s.id AS source_id, s.quiet_after_minutes AS minutes,
                    w.last_event_at
             FROM sources s
             CROSS JOIN LATERAL (
                 SELECT max(e.received_at) AS last_event_at FROM events e
                 WHERE e.source_id = s.id AND NOT e.test
             ) w
             WHERE s.quiet_after_minutes IS NOT NULL
               AND w.last_event_at < $1 - make_interval(mins => s.quiet_after_minutes)
         ), noted AS (
             INSERT INTO source_quiet (source_id, team_id, since, last_event_at)
             SELECT source_id, team_id, $1, last_event_at FROM silent
             ON CONFLICT (source_id) DO NOTHING
             RETURNING source_id
         )
         SELECT silent.* FROM silent JOIN noted USING (source_id)",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?)
}

/// Forgets the quiet sources whose events flow again (returned, to tell the team) and
/// those no longer watched (not returned: nobody asked about them any more).
#[tracing::instrument(skip_all)]
pub async fn flowing_again(tx: &mut PgConnection) -> Result<Vec<Flowing>, StoreError> {
    sqlx::query(
        "DELETE FROM source_quiet q WHERE NOT EXISTS (
             SELECT 1 FROM sources s WHERE s.id = q.source_id AND s.quiet_after_minutes IS NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    Ok(sqlx::query_as::<_, Flowing>(
        "DELETE FROM source_quiet q WHERE EXISTS (
             SELECT 1 FROM events e
             WHERE e.source_id = q.source_id AND NOT e.test AND e.received_at > q.last_event_at)
         RETURNING q.team_id, q.source_id, q.since",
    )
    .fetch_all(&mut *tx)
    .await?)
}
