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
    /// Repeats of this event the sender sent after it was accepted, answered `duplicate`.
    pub duplicates: i32,
    pub last_duplicate_at: Option<DateTime<Utc>>,
    /// A person's test, sent from the source's page rather than by its sender.
    pub test: bool,
    /// Made by a reconciliation pass for a status change whose webhook never came.
    pub synthesized: bool,
    /// The synthesized event this real webhook turned out to repeat ("already
    /// reconciled"): it is kept, and delivers nothing.
    pub reconciled_by: Option<EventId>,
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
    pub deliveries: Vec<DeliveryPlan>,
    /// The session status change it announces, when its source reconciles: ingest notes
    /// it, and makes no delivery if a pass already synthesized it.
    pub status: Option<super::StatusChange>,
    /// Made by a reconciliation pass, not received.
    pub synthesized: bool,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub event_type: Option<String>,
    /// A glob over the event type (`session.*`), `*` matching anything.
    pub event_type_glob: Option<String>,
    pub dedup_key: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Events with at least one delivery in this status.
    pub delivery_status: Option<crate::delivery::DeliveryStatus>,
}

/// A glob (`*` for any characters) as a SQL `LIKE` pattern, with `%`, `_` and `\`
/// taken literally.
pub fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 2);
    for c in glob.chars() {
        match c {
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('%'),
            c => out.push(c),
        }
    }
    out
}

/// One delivery an event makes: to `destination_id` through `route_id`, or, when the
/// route cannot judge it (its filter failed on it, or the route no longer compiles), a
/// `failed` delivery carrying the reason.
#[derive(Debug, Clone)]
pub struct DeliveryPlan {
    pub route_id: crate::ids::RouteId,
    pub destination_id: crate::ids::DestinationId,
    pub failure: Option<String>,
    /// The route's ordering and coalescing keys for this event, and its delay.
    pub sequence: super::Sequence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_like_patterns_with_the_rest_literal() {
        assert_eq!(like_pattern("session.*"), "session.%");
        assert_eq!(like_pattern("*"), "%");
        assert_eq!(like_pattern("100%_done\\*"), "100\\%\\_done\\\\%");
    }
}
