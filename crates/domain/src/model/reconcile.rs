//! Reconciliation's vocabulary: a Managed Agents session's statuses, the webhook type that
//! announces each and the session event that records it (spec §1.8), and the status
//! change a webhook or a pass tells about a session.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A session status as `GET /v1/sessions` lists it, the webhook `data.type` announcing a
/// change to it, and the session event (`GET /v1/sessions/{id}/events`) recording it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStatus {
    pub listed: &'static str,
    pub webhook: &'static str,
    pub session_event: &'static str,
}

/// Every status a reconciliation pass compares (webhook names, not the stream's).
pub const SESSION_STATUSES: [SessionStatus; 4] = [
    SessionStatus {
        listed: "running",
        webhook: "session.status_run_started",
        session_event: "session.status_running",
    },
    SessionStatus {
        listed: "idle",
        webhook: "session.status_idled",
        session_event: "session.status_idle",
    },
    SessionStatus {
        listed: "rescheduling",
        webhook: "session.status_rescheduled",
        session_event: "session.status_rescheduled",
    },
    SessionStatus {
        listed: "terminated",
        webhook: "session.status_terminated",
        session_event: "session.status_terminated",
    },
];

impl SessionStatus {
    /// The status a listed session's `status` names.
    pub fn listed(status: &str) -> Option<SessionStatus> {
        SESSION_STATUSES.into_iter().find(|s| s.listed == status)
    }

    /// The status a webhook type announces.
    pub fn announced_by(webhook: &str) -> Option<SessionStatus> {
        SESSION_STATUSES.into_iter().find(|s| s.webhook == webhook)
    }

    /// A terminated session changes no more: it stops being watched.
    pub fn is_terminal(self) -> bool {
        self.listed == "terminated"
    }
}

/// How near a real webhook's `created_at` must be to a synthesized event's for both to
/// be the same transition (or it must fall between the status stored before and the
/// pass that synthesized it).
pub const SAME_TRANSITION_TOLERANCE: chrono::Duration = chrono::Duration::seconds(2);

/// The header a synthesized event is stored with and every request delivering it
/// carries.
pub const SYNTHESIZED_HEADER: &str = "switchyard-synthesized";

/// A watched session that goes this long without changing stops being watched.
pub const UNCHANGED_FOR: chrono::Duration = chrono::Duration::days(7);

/// A session's change of status, as an Anthropic status event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub session_id: String,
    /// The webhook type (`session.status_idled`).
    pub event_type: String,
    /// Anthropic's time for the change: the envelope's `created_at`.
    pub at: DateTime<Utc>,
    pub organization_id: Option<String>,
    pub workspace_id: Option<String>,
}

impl StatusChange {
    /// The change an Anthropic envelope announces: none unless its `data.type` is a
    /// session status, `data.id` names a session and `created_at` is a time.
    pub fn of(envelope: &Value) -> Option<StatusChange> {
        let data = envelope.get("data")?;
        let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        let event_type = text(data, "type")?;
        SessionStatus::announced_by(&event_type)?;
        let session_id = text(data, "id").filter(|id| !id.is_empty() && id.len() <= 128)?;
        let at = envelope
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
            .with_timezone(&Utc);
        Some(StatusChange {
            session_id,
            event_type,
            at,
            organization_id: text(data, "organization_id"),
            workspace_id: text(data, "workspace_id"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_listed_status_maps_to_its_webhook_and_session_event() {
        let idle = SessionStatus::listed("idle").unwrap();
        assert_eq!(idle.webhook, "session.status_idled");
        assert_eq!(idle.session_event, "session.status_idle");
        assert_eq!(
            SessionStatus::listed("running").unwrap().webhook,
            "session.status_run_started"
        );
        assert_eq!(
            SessionStatus::announced_by("session.status_rescheduled")
                .unwrap()
                .listed,
            "rescheduling"
        );
        assert!(SessionStatus::listed("terminated").unwrap().is_terminal());
        assert!(!idle.is_terminal());
        assert_eq!(SessionStatus::listed("archived"), None);
    }

    #[test]
    fn only_a_status_event_with_a_session_and_a_time_is_a_change() {
        let envelope = json!({"type": "event", "id": "whe_1", "created_at": "2026-12-05T09:30:02Z",
            "data": {"type": "session.status_idled", "id": "sesn_1", "workspace_id": "wrkspc_1"}});
        let change = StatusChange::of(&envelope).unwrap();
        assert_eq!(change.session_id, "sesn_1");
        assert_eq!(change.event_type, "session.status_idled");
        assert_eq!(change.at.to_rfc3339(), "2026-12-05T09:30:02+00:00");
        assert_eq!(change.workspace_id.as_deref(), Some("wrkspc_1"));
        assert_eq!(change.organization_id, None);

        let mut thread = envelope.clone();
        thread["data"]["type"] = json!("session.thread_idled");
        assert_eq!(StatusChange::of(&thread), None);
        let mut untimed = envelope.clone();
        untimed["created_at"] = json!("yesterday");
        assert_eq!(StatusChange::of(&untimed), None);
        let mut anonymous = envelope;
        anonymous["data"]["id"] = json!("");
        assert_eq!(StatusChange::of(&anonymous), None);
    }
}
