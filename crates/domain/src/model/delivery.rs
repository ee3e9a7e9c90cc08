//! Deliveries (one event to one destination through one route) and their attempts.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::delivery::DeliveryStatus;
use crate::ids::{AttemptId, DeliveryId, DestinationId, EventId, RouteId, TeamId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    #[serde(skip)]
    pub team_id: TeamId,
    pub event_id: EventId,
    pub route_id: Option<RouteId>,
    pub destination_id: DestinationId,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempt_count: i32,
    #[serde(skip)]
    pub series_attempts: i32,
    pub replay_count: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// A routine delivery: the Claude Code session its fire started.
    pub claude_code_session_id: Option<String>,
    pub claude_code_session_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Attempt {
    pub id: AttemptId,
    pub number: i32,
    pub replay: bool,
    /// `in_flight`, `succeeded`, `failed` or `lost` (its worker died mid-send).
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i32>,
    /// The headers sent, with credentials shown as `[redacted]`.
    #[schema(value_type = Option<Object>)]
    pub request_headers: Option<serde_json::Value>,
    pub response_status: Option<i32>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub claude_code_session_id: Option<String>,
    pub claude_code_session_url: Option<String>,
    /// How the message was built, when it is worth telling: an enrichment that found no
    /// object (`enrichment: Anthropic answered 404 …; sent with "object": null`).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    /// Only deliveries that failed at least once in their current series: pending
    /// deliveries waiting to be retried.
    pub retrying: bool,
    pub event_id: Option<EventId>,
    pub route_id: Option<RouteId>,
    pub destination_id: Option<DestinationId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A delivery as the log lists it: with its event's type and the status code of the
/// last answer it got.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryLine {
    #[sqlx(flatten)]
    pub delivery: Delivery,
    pub event_type: Option<String>,
    pub response_status: Option<i32>,
    /// Its event is a person's test.
    pub test_event: Option<bool>,
}
