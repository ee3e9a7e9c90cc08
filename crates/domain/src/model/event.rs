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
    /// Events whose JSON body holds this value at this path.
    pub payload: Option<PayloadMatch>,
}

/// `payload.issue.number = 42`: a path into a JSON body and the value it must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadMatch {
    pub path: Vec<String>,
    pub value: serde_json::Value,
}

impl PayloadMatch {
    /// Reads `issue.number = 42` (a leading `payload.` is optional). The value is JSON
    /// when it parses as JSON (`42`, `true`, `"42"`), else the text as a string.
    pub fn parse(raw: &str) -> Result<PayloadMatch, String> {
        let (path, value) = raw
            .split_once('=')
            .ok_or_else(|| format!("{raw:?} is not path = value, such as issue.number = 42"))?;
        let path = path.trim();
        let path = path.strip_prefix("payload.").unwrap_or(path);
        let segments: Vec<String> = path.split('.').map(|s| s.trim().to_owned()).collect();
        if path.is_empty() || segments.iter().any(String::is_empty) {
            return Err(format!("{path:?} is not a path such as issue.number"));
        }
        let value = value.trim();
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        Ok(PayloadMatch {
            path: segments,
            value,
        })
    }

    /// Bytes every matching body contains, checked before the body is parsed: the text
    /// of a plain string or integer value. `None` when the value could be written more
    /// than one way in JSON (escapes, decimals, objects).
    pub fn needle(&self) -> Option<Vec<u8>> {
        match &self.value {
            serde_json::Value::String(s)
                if !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '/') =>
            {
                Some(s.as_bytes().to_vec())
            }
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => {
                Some(n.to_string().into_bytes())
            }
            _ => None,
        }
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_searches_read_a_path_and_a_json_value() {
        let m = PayloadMatch::parse("payload.issue.number = 42").unwrap();
        assert_eq!(m.path, ["issue", "number"]);
        assert_eq!(m.value, serde_json::json!(42));
        let m = PayloadMatch::parse("action=opened").unwrap();
        assert_eq!(m.path, ["action"]);
        assert_eq!(m.value, serde_json::json!("opened"));
        assert_eq!(
            PayloadMatch::parse("data.id = \"42\"").unwrap().value,
            serde_json::json!("42")
        );
        for bad in ["issue.number", "= 3", "a..b = 1"] {
            assert!(PayloadMatch::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_values_written_one_way_narrow_the_scan() {
        let needle = |raw: &str| PayloadMatch::parse(raw).unwrap().needle();
        assert_eq!(needle("issue.number = 42"), Some(b"42".to_vec()));
        assert_eq!(needle("action = opened"), Some(b"opened".to_vec()));
        assert_eq!(needle("a = 4.5"), None);
        assert_eq!(needle("a = \"two words\""), None);
        assert_eq!(needle("a = \"a/b\""), None, "JSON may escape the slash");
        assert_eq!(needle("a = true"), None);
    }

    #[test]
    fn globs_become_like_patterns_with_the_rest_literal() {
        assert_eq!(like_pattern("session.*"), "session.%");
        assert_eq!(like_pattern("*"), "%");
        assert_eq!(like_pattern("100%_done\\*"), "100\\%\\_done\\\\%");
    }
}
