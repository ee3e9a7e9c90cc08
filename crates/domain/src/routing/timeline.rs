//! Anthropic's Managed Agents send `session.*` events thin, unordered and at least once.
//! The timeline puts them back together: grouped by session (`data.id`), ordered by when
//! Anthropic says they happened (`created_at`) rather than when they arrived, with thread
//! events (`data.session_thread_id`) nested under their thread.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::EventId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub event_id: EventId,
    pub event_type: String,
    pub at: DateTime<Utc>,
    /// When Switchyard received it: later than `at`, sometimes out of order.
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub workspace_id: Option<String>,
    /// The session's own events, in order.
    pub entries: Vec<Entry>,
    pub threads: Vec<Thread>,
}

impl Session {
    /// The latest status the session's own events report (`idled`, `terminated`, …).
    pub fn status(&self) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find_map(|e| e.event_type.strip_prefix("session.status_"))
    }

    pub fn last_at(&self) -> DateTime<Utc> {
        self.entries
            .iter()
            .chain(self.threads.iter().flat_map(|t| &t.entries))
            .map(|e| e.at)
            .max()
            .unwrap_or_default()
    }
}

/// Builds sessions from events (any order, duplicates ignored), busiest-lately first.
/// Events whose body is not an Anthropic session event are skipped.
pub fn sessions<'a>(
    events: impl IntoIterator<Item = (&'a EventId, DateTime<Utc>, &'a [u8])>,
) -> Vec<Session> {
    let mut by_id: BTreeMap<String, Session> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (event_id, received_at, body) in events {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        let data = &body["data"];
        let (Some(kind), Some(session)) = (data["type"].as_str(), data["id"].as_str()) else {
            continue;
        };
        if !kind.starts_with("session.") {
            continue;
        }
        // Anthropic's own event id: a redelivery is the same event.
        let key = body["id"]
            .as_str()
            .map_or_else(|| event_id.to_string(), str::to_owned);
        if !seen.insert(key) {
            continue;
        }
        let at = body["created_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(received_at, |t| t.with_timezone(&Utc));
        let entry = Entry {
            event_id: event_id.clone(),
            event_type: kind.to_owned(),
            at,
            received_at,
        };
        let s = by_id.entry(session.to_owned()).or_insert_with(|| Session {
            id: session.to_owned(),
            workspace_id: None,
            entries: Vec::new(),
            threads: Vec::new(),
        });
        if s.workspace_id.is_none() {
            s.workspace_id = data["workspace_id"].as_str().map(str::to_owned);
        }
        match data["session_thread_id"].as_str() {
            Some(thread) => match s.threads.iter_mut().find(|t| t.id == thread) {
                Some(t) => t.entries.push(entry),
                None => s.threads.push(Thread {
                    id: thread.to_owned(),
                    entries: vec![entry],
                }),
            },
            None => s.entries.push(entry),
        }
    }
    let mut all: Vec<Session> = by_id.into_values().collect();
    for s in &mut all {
        s.entries.sort_by_key(|e| (e.at, e.received_at));
        for t in &mut s.threads {
            t.entries.sort_by_key(|e| (e.at, e.received_at));
        }
        s.threads
            .sort_by_key(|t| t.entries.first().map(|e| e.at).unwrap_or_default());
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.last_at()));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, kind: &str, session: &str, thread: Option<&str>, at: &str) -> Vec<u8> {
        let mut data = serde_json::json!({"type": kind, "id": session, "workspace_id": "wrkspc_1"});
        if let Some(thread) = thread {
            data["session_thread_id"] = thread.into();
        }
        serde_json::json!({"type": "event", "id": id, "created_at": at, "data": data})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn events_arriving_out_of_order_read_in_the_order_they_happened() {
        let ids: Vec<EventId> = (0..6).map(|_| EventId::generate()).collect();
        let arrived = Utc::now();
        let bodies = [
            event(
                "whe_3",
                "session.status_idled",
                "sesn_A",
                None,
                "2026-11-27T10:00:03Z",
            ),
            event(
                "whe_1",
                "session.status_run_started",
                "sesn_A",
                None,
                "2026-11-27T10:00:01Z",
            ),
            event(
                "whe_2",
                "session.thread_created",
                "sesn_A",
                Some("sthr_1"),
                "2026-11-27T10:00:02Z",
            ),
            event(
                "whe_1",
                "session.status_run_started",
                "sesn_A",
                None,
                "2026-11-27T10:00:01Z",
            ),
            event(
                "whe_9",
                "session.status_terminated",
                "sesn_B",
                None,
                "2026-11-27T11:00:00Z",
            ),
            b"not json".to_vec(),
        ];
        let input: Vec<(&EventId, DateTime<Utc>, &[u8])> = ids
            .iter()
            .zip(&bodies)
            .map(|(id, body)| (id, arrived, body.as_slice()))
            .collect();
        let sessions = sessions(input);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0].id, "sesn_B", "the most recent session first");
        let a = &sessions[1];
        let kinds: Vec<&str> = a.entries.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            ["session.status_run_started", "session.status_idled"],
            "by created_at, the redelivery once"
        );
        assert_eq!(a.status(), Some("idled"));
        assert_eq!(a.threads.len(), 1);
        assert_eq!(a.threads[0].id, "sthr_1");
        assert_eq!(a.workspace_id.as_deref(), Some("wrkspc_1"));
    }
}
