//! Routes: which events of a source go to which destination.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{DestinationId, RouteId, SourceId, TeamId};
use crate::routing::EventTypes;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Route {
    pub id: RouteId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub name: String,
    pub source_id: SourceId,
    pub destination_id: DestinationId,
    pub event_types: Vec<String>,
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
}
