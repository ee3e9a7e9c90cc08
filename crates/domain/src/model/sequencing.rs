//! How a route sequences its deliveries: per-key ordering (one at a time, in event time
//! order) and coalescing (a burst of one key's events within a fixed window becomes its
//! newest). Ingest reads the key and the event's time and stores them on the delivery;
//! the claim does the rest without reading a body.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::routing::EventTypes;

/// The key both options default to: an Anthropic event's session (or other object) id.
pub const DEFAULT_KEY: &str = "/data/id";

/// Route option `ordering`: deliveries with the same key are delivered one at a time, in
/// the order of their events' `created_at` (when they were received, for senders that
/// give none); each waits `window_ms` after its event arrived, so an earlier event that
/// arrives a little later still goes first. A key whose delivery is retrying or held
/// holds back only that key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ordering {
    /// A JSON pointer into the body (default `/data/id`).
    #[serde(default = "default_key")]
    pub key: String,
    /// Milliseconds each delivery waits for late, earlier events (0 to 60000; default
    /// 2000).
    #[serde(default = "default_ordering_window")]
    pub window_ms: u32,
}

/// Route option `coalesce`: of the matching events of one key that arrive within a fixed
/// window (anchored at the first, never extended), only the newest is delivered; the
/// others are cancelled as superseded, and can be replayed. A replay is never coalesced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coalesce {
    /// A JSON pointer into the body (default `/data/id`).
    #[serde(default = "default_key")]
    pub key: String,
    /// Event type globs that coalesce (default every type the route takes).
    #[serde(default = "every_type")]
    pub types: Vec<String>,
    /// The window, in milliseconds (100 to 3600000; default 5000).
    #[serde(default = "default_coalesce_window")]
    pub window_ms: u32,
}

fn default_key() -> String {
    DEFAULT_KEY.to_owned()
}

fn default_ordering_window() -> u32 {
    2000
}

fn default_coalesce_window() -> u32 {
    5000
}

fn every_type() -> Vec<String> {
    vec!["*".to_owned()]
}

pub const MAX_ORDERING_WINDOW_MS: u32 = 60_000;
pub const COALESCE_WINDOW_MS: std::ops::RangeInclusive<u32> = 100..=3_600_000;

impl Ordering {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        check_pointer(&self.key)?;
        if self.window_ms > MAX_ORDERING_WINDOW_MS {
            return Err(format!(
                "window_ms must be at most {MAX_ORDERING_WINDOW_MS}"
            ));
        }
        Ok(())
    }
}

impl Coalesce {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        check_pointer(&self.key)?;
        if !COALESCE_WINDOW_MS.contains(&self.window_ms) {
            return Err(format!(
                "window_ms must be between {} and {}",
                COALESCE_WINDOW_MS.start(),
                COALESCE_WINDOW_MS.end()
            ));
        }
        if self.types.is_empty() {
            return Err("types must name at least one event type glob".to_owned());
        }
        EventTypes::parse(&self.types)
            .map(|_| ())
            .map_err(|e| format!("types: {e}"))
    }
}

fn check_pointer(key: &str) -> Result<(), String> {
    if !key.starts_with('/') || key.len() > 200 {
        return Err(format!(
            "key must be a JSON pointer into the body, such as {DEFAULT_KEY}"
        ));
    }
    Ok(())
}

/// The key a pointer reads from a body: a string as it is, a number or boolean as
/// written; none for anything else (such an event is not sequenced).
pub fn key_of(payload: Option<&Value>, pointer: &str) -> Option<String> {
    match payload?.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.chars().take(200).collect()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// When the sender says the event happened: its top-level `created_at` (RFC 3339, as
/// Anthropic and many others send it), else none.
pub fn event_time(payload: Option<&Value>) -> Option<DateTime<Utc>> {
    let created = payload?.get("created_at")?.as_str()?;
    DateTime::parse_from_rfc3339(created)
        .ok()
        .map(|t| t.to_utc())
}

/// What ingest stores on one delivery for its route's ordering and coalescing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequence {
    pub order_key: Option<String>,
    pub coalesce_key: Option<String>,
    /// The event's time, for ordering and for the newest of a window.
    pub event_at: Option<DateTime<Utc>>,
    /// How long after its event arrived the delivery falls due.
    pub delay_ms: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_and_times_are_read_from_the_body() {
        let body = json!({"created_at": "2026-12-05T09:30:00Z",
                          "data": {"id": "sesn_1", "n": 7, "obj": {}}});
        assert_eq!(key_of(Some(&body), "/data/id").as_deref(), Some("sesn_1"));
        assert_eq!(key_of(Some(&body), "/data/n").as_deref(), Some("7"));
        assert_eq!(key_of(Some(&body), "/data/obj"), None);
        assert_eq!(key_of(Some(&body), "/nope"), None);
        assert_eq!(
            event_time(Some(&body)),
            Some("2026-12-05T09:30:00Z".parse().unwrap())
        );
        assert_eq!(event_time(Some(&json!({"created_at": 5}))), None);
    }

    #[test]
    fn options_are_checked() {
        let ordering: Ordering = serde_json::from_value(json!({})).unwrap();
        assert_eq!(ordering.key, "/data/id");
        assert_eq!(ordering.window_ms, 2000);
        assert!(ordering.check().is_ok());
        let bad = Ordering {
            key: "data.id".to_owned(),
            window_ms: 10,
        };
        assert!(bad.check().unwrap_err().contains("JSON pointer"));
        let coalesce: Coalesce =
            serde_json::from_value(json!({"types": ["session.status_*"]})).unwrap();
        assert_eq!(coalesce.window_ms, 5000);
        assert!(coalesce.check().is_ok());
        let short = Coalesce {
            window_ms: 5,
            ..coalesce
        };
        assert!(short.check().is_err());
        assert!(serde_json::from_value::<Coalesce>(json!({"window": 5})).is_err());
    }
}
