//! Events: what a source received, stored byte for byte.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{EventId, SourceId, TeamId};
use crate::providers::DedupKey;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Event {
    pub id: EventId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub source_id: SourceId,
    pub event_type: Option<String>,
    pub dedup_key: String,
    pub received_at: DateTime<Utc>,
}

/// An accepted request on its way into the database.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub team_id: TeamId,
    pub source_id: SourceId,
    pub event_type: Option<String>,
    pub dedup_key: DedupKey,
    /// When the dedup key stops deduplicating.
    pub dedup_until: DateTime<Utc>,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// One delivery per matched route: (route, destination).
    pub targets: Vec<(crate::ids::RouteId, crate::ids::DestinationId)>,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub event_type: Option<String>,
    pub dedup_key: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}
