//! Routes: which events of a source go to which destination.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{DestinationId, RouteId, SourceId, TeamId};
use std::sync::Arc;

use crate::routing::{EventTypes, Filter};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Route {
    pub id: RouteId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub name: String,
    pub source_id: SourceId,
    pub destination_id: DestinationId,
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
}

/// A route as the data plane matches it: compiled once when the source is cached.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    pub route_id: RouteId,
    pub destination_id: DestinationId,
    pub event_types: EventTypes,
    /// The compiled filter; an error here (a filter that no longer compiles) fails every
    /// delivery the route would make, saying why.
    pub filter: Option<Result<Arc<Filter>, String>>,
}
