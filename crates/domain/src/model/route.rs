//! Routes: which events of a source go to which destination.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use sqlx::postgres::PgRow;

use crate::ids::{DestinationId, RouteId, SourceId, TeamId};
use crate::routing::pipeline::{RouteRule, broken};

/// A route as stored, with its rule compiled when it is read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Route {
    pub id: RouteId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub name: String,
    pub source_id: SourceId,
    pub destination_id: DestinationId,
    /// The patterns as written.
    pub event_types: Vec<String>,
    /// A boolean minijinja expression over `payload`, `headers` and `event_type`; the
    /// route takes only events for which it is true.
    pub filter: Option<String>,
    /// What the destination takes, as a minijinja template (null: the kind's default).
    pub template: Option<String>,
    /// Email routes: the subject, as a minijinja template.
    pub subject: Option<String>,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The event types parsed and the filter compiled; an error is a route a newer
    /// release refuses as stored. Shown as `broken`: why the route takes no event as
    /// written (its deliveries fail saying the same until it is mended), null when it
    /// works.
    #[serde(rename = "broken", serialize_with = "broken_reason")]
    #[schema(value_type = Option<String>)]
    pub rule: Result<Arc<RouteRule>, String>,
}

impl Route {
    /// Why the route no longer compiles, if it does not.
    pub fn broken(&self) -> Option<&str> {
        self.rule.as_ref().err().map(String::as_str)
    }
}

fn broken_reason<S: Serializer>(
    rule: &Result<Arc<RouteRule>, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    rule.as_ref().err().serialize(s)
}

/// The row as stored.
#[derive(sqlx::FromRow)]
struct Row {
    id: RouteId,
    team_id: TeamId,
    name: String,
    source_id: SourceId,
    destination_id: DestinationId,
    event_types: Vec<String>,
    filter: Option<String>,
    template: Option<String>,
    subject: Option<String>,
    paused: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'r> sqlx::FromRow<'r, PgRow> for Route {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let row = Row::from_row(row)?;
        let rule = RouteRule::compile(&row.event_types, row.filter.as_deref())
            .map(Arc::new)
            .map_err(|e| broken(&e));
        Ok(Route {
            id: row.id,
            team_id: row.team_id,
            name: row.name,
            source_id: row.source_id,
            destination_id: row.destination_id,
            event_types: row.event_types,
            filter: row.filter,
            template: row.template,
            subject: row.subject,
            paused: row.paused,
            created_at: row.created_at,
            updated_at: row.updated_at,
            rule,
        })
    }
}
