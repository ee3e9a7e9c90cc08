//! An attempt as the worker holds it: what a claim hands over for sending
//! ([`Claimed`]), and what the send came to ([`AttemptRecord`]). The claim that makes
//! one is in `claim`, the write of its outcome in `outcomes`.

use chrono::{DateTime, Utc};

pub use super::event_objects::Enrichment;
use crate::delivery::DestinationKind;
use crate::ids::{AttemptId, DeliveryId};
use crate::model::{Delivery, DestinationConfig};

/// An attempt committed as `in_flight`, with what the worker needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    /// Where it goes; the secrets are in `sealed_credentials`.
    pub config: DestinationConfig,
    pub sealed_signing_secret: Vec<u8>,
    /// The secret being rotated out, while it still signs beside the new one.
    pub sealed_previous_signing_secret: Option<Vec<u8>>,
    /// The destination's [`Credentials`](crate::model::Credentials), sealed.
    pub sealed_credentials: Option<Vec<u8>>,
    /// The event as received: headers (lower-cased names) and raw body.
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    pub dedup_key: String,
    pub source_name: String,
    pub source_provider: String,
    pub team_slug: String,
    /// The route's template and email subject (none: the kind's default, or the route
    /// is gone).
    pub template: Option<String>,
    pub subject: Option<String>,
    /// The route fetches the Anthropic object the event names before rendering.
    pub enrich: bool,
    /// The object fetched for the event, once it has been.
    pub enrichment: Option<Enrichment>,
    /// The event was synthesized by a reconciliation pass: requests say so.
    pub synthesized: bool,
    /// The breaker is open and this delivery is its probe.
    pub is_probe: bool,
    /// The attempt this claim started: every write of its outcome is fenced by it.
    pub attempt_id: AttemptId,
    /// Number within the series, for the retry policy.
    pub series_attempt: u32,
}

impl Claimed {
    pub fn kind(&self) -> DestinationKind {
        self.config.kind()
    }
}

/// What one send came to, as stored on its attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    /// The headers sent, credentials redacted.
    pub request_headers: Option<serde_json::Value>,
    /// A routine's answer: the session the fire started.
    pub claude_code_session_id: Option<String>,
    pub claude_code_session_url: Option<String>,
    /// What the answer says about the destination as a whole.
    pub destination: DestinationEffect,
    /// How the message was built, when it is worth telling (an enrichment that found
    /// nothing to fetch).
    pub note: Option<String>,
}

/// What an answer means for every delivery to its destination, not only this one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DestinationEffect {
    #[default]
    None,
    /// A 429 with `Retry-After` from a routine or Slack: hold sends until then.
    BackOffUntil(DateTime<Utc>),
    /// The receiver says it is gone for good (Slack's `no_service`): stop sending and
    /// hold deliveries until a person resumes the destination.
    Disable(String),
}

/// A claimed delivery's row and everything joined to it, as the claim's `RETURNING`
/// reads it (see [`CLAIMED`]).
#[derive(sqlx::FromRow)]
pub(super) struct Started {
    #[sqlx(flatten)]
    delivery: Delivery,
    current_attempt_id: AttemptId,
    probe: bool,
    config: sqlx::types::Json<DestinationConfig>,
    signing_secret: Vec<u8>,
    sealed_credentials: Option<Vec<u8>>,
    previous_signing_secret: Option<Vec<u8>>,
    headers: serde_json::Value,
    body: Vec<u8>,
    event_type: Option<String>,
    received_at: DateTime<Utc>,
    dedup_key: String,
    source_name: String,
    source_provider: String,
    team_slug: String,
    route_template: Option<String>,
    route_subject: Option<String>,
    route_enrich: Option<bool>,
    object_fetched: bool,
    event_object: Option<serde_json::Value>,
    object_note: Option<String>,
    synthesized: bool,
}

/// What a claim reads besides the delivery row `s`: its destination, its event, the
/// event's source, the team and the route.
pub(super) const CLAIMED: &str = "SELECT s.*, dst.config,
        dst.signing_secret, dst.sealed_credentials,
        CASE WHEN dst.previous_signing_until > now() THEN dst.previous_signing_secret END
            AS previous_signing_secret,
        e.headers, e.body, e.event_type, e.received_at, e.dedup_key,
        src.name AS source_name, src.provider AS source_provider, t.slug AS team_slug,
        r.template AS route_template, r.subject AS route_subject, r.enrich AS route_enrich,
        eo.event_id IS NOT NULL AS object_fetched, eo.object AS event_object,
        eo.note AS object_note, e.synthesized
    FROM started s
    JOIN destinations dst ON dst.team_id = s.team_id AND dst.id = s.destination_id
    JOIN events e ON e.team_id = s.team_id AND e.id = s.event_id
    JOIN sources src ON src.team_id = e.team_id AND src.id = e.source_id
    JOIN teams t ON t.id = s.team_id
    LEFT JOIN routes r ON r.team_id = s.team_id AND r.id = s.route_id
    LEFT JOIN event_objects eo ON r.enrich AND eo.event_id = s.event_id";

impl Started {
    pub(super) fn id(&self) -> &DeliveryId {
        &self.delivery.id
    }

    pub(super) fn into_claimed(self) -> Claimed {
        let series_attempt = u32::try_from(self.delivery.series_attempts).unwrap_or(1);
        Claimed {
            delivery: self.delivery,
            config: self.config.0,
            sealed_signing_secret: self.signing_secret,
            sealed_previous_signing_secret: self.previous_signing_secret,
            sealed_credentials: self.sealed_credentials,
            headers: self.headers,
            body: self.body,
            event_type: self.event_type,
            received_at: self.received_at,
            dedup_key: self.dedup_key,
            source_name: self.source_name,
            source_provider: self.source_provider,
            team_slug: self.team_slug,
            template: self.route_template,
            subject: self.route_subject,
            enrich: self.route_enrich.unwrap_or(false),
            enrichment: self.object_fetched.then_some(Enrichment {
                object: self.event_object,
                note: self.object_note,
            }),
            synthesized: self.synthesized,
            is_probe: self.probe,
            attempt_id: self.current_attempt_id,
            series_attempt,
        }
    }
}
