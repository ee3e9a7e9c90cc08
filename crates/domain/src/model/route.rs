//! Routes: which events of a source go to which destination.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::sequencing::{Coalesce, Ordering};

use crate::ids::{DestinationId, RouteId, SourceId, TeamId};
use crate::routing::pipeline::{StoredRule, stored_rule};
use crate::routing::template::check_template;

/// A route as stored, with its rule compiled when it is read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Route {
    pub id: RouteId,
    #[serde(skip)]
    pub team_id: TeamId,
    #[schema(min_length = 1, max_length = 100)]
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
    /// Anthropic sources: fetch the object the event names (its session, vault
    /// credential, …) before rendering; templates see it as `object`.
    pub enrich: bool,
    /// Deliveries with the same key go one at a time, in event time order.
    pub ordering: Option<Ordering>,
    /// A burst of one key's events within a window becomes its newest.
    pub coalesce: Option<Coalesce>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Why a newer release no longer compiles the route as stored (its event types, its
    /// filter, its template or subject), null when it works. Its deliveries fail saying
    /// the same until it is mended.
    pub broken: Option<String>,
    /// The event types parsed and the filter compiled, as matching uses them.
    #[serde(skip)]
    pub rule: StoredRule,
}

impl Route {
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }
}

/// The first part of a stored route that no longer compiles, worded for people.
fn broken_part(rule: &StoredRule, template: Option<&str>, subject: Option<&str>) -> Option<String> {
    let template_fails = |what: &str, source: Option<&str>| {
        let e = check_template(source?).err()?;
        Some(format!("the route's {what} no longer compiles: {e}"))
    };
    match rule {
        Err(reason) => Some(reason.clone()),
        Ok(rule) => rule
            .broken()
            .or_else(|| template_fails("template", template))
            .or_else(|| template_fails("subject", subject)),
    }
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
    enrich: bool,
    ordering: Option<Json<Ordering>>,
    coalescing: Option<Json<Coalesce>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'r> sqlx::FromRow<'r, PgRow> for Route {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let row = Row::from_row(row)?;
        let rule = stored_rule(&row.event_types, row.filter.as_deref());
        let broken = broken_part(&rule, row.template.as_deref(), row.subject.as_deref());
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
            enrich: row.enrich,
            ordering: row.ordering.map(|o| o.0),
            coalesce: row.coalescing.map(|c| c.0),
            created_at: row.created_at,
            updated_at: row.updated_at,
            broken,
            rule,
        })
    }
}
