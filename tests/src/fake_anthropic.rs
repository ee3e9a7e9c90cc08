//! A stand-in for the Managed Agents API (anthropic.md §1.7, §1.8): one workspace's
//! objects behind one API key. It checks every request the way the real API does (the
//! key in `x-api-key`, `anthropic-version`, the managed-agents beta) and answers with the
//! real envelopes: `404 not_found_error`, `401 authentication_error`, `429
//! rate_limit_error` with `Retry-After`, `500 api_error`. Failures can be scripted ahead
//! of the objects. Lists (`GET /v1/sessions`, `GET /v1/sessions/{id}/events`) filter,
//! order and page the way the SDK's `pagination.py` reads them: `{"data", "next_page",
//! "prev_page"}`, the next request passing `page=<next_page>`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::receiver::Received;

/// The beta header value the Managed Agents endpoints require.
const BETA: &str = "managed-agents-2026-04-01";

/// A scripted answer, given before the object would be.
#[derive(Debug, Clone)]
pub enum Trouble {
    /// 429 with `Retry-After` seconds.
    RateLimited(u64),
    /// 500 `api_error`, 503 `overloaded_error`, or any other status with the envelope.
    Status(u16),
    /// Reads the request, then answers only after this long.
    Slow(Duration),
}

struct State {
    key: Mutex<String>,
    /// Objects by path (`/v1/sessions/sesn_1`).
    objects: Mutex<BTreeMap<String, Value>>,
    /// Each session's events (`session.status_idle`, …), oldest first.
    session_events: Mutex<BTreeMap<String, Vec<Value>>>,
    trouble: Mutex<VecDeque<Trouble>>,
    received: Mutex<Vec<Received>>,
}

#[derive(Clone)]
pub struct FakeAnthropic {
    state: Arc<State>,
    pub base: String,
}

impl FakeAnthropic {
    /// An API that takes `key` and holds nothing yet.
    pub async fn start(key: &str) -> FakeAnthropic {
        let state = Arc::new(State {
            key: Mutex::new(key.to_owned()),
            objects: Mutex::default(),
            session_events: Mutex::default(),
            trouble: Mutex::default(),
            received: Mutex::default(),
        });
        let base = crate::fakes::serve({
            let state = state.clone();
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(web::Data::new(state.clone()))
                    .route("/v1/{rest:.*}", web::get().to(answer));
            }
        });
        FakeAnthropic { state, base }
    }

    /// An app calling this API, with `key` stored as the team's key, and an Anthropic
    /// source: the app, the source and its signing secret.
    pub async fn connected_app(
        &self,
        key: &str,
        options: crate::app::Options,
    ) -> (crate::TestApp, Value, String) {
        let app = crate::TestApp::spawn_with(crate::app::Options {
            anthropic_api_url: Some(self.base.clone()),
            ..options
        })
        .await;
        let (status, body) = app
            .call(
                reqwest::Method::PUT,
                "/api/v1/integrations/anthropic",
                Some(json!({"api_key": key})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let secret = crate::sign::new_whsec();
        let source = app.create_source("anthropic", Some(&secret)).await;
        (app, source, secret)
    }

    /// Stores an object at `path`.
    pub fn put(&self, path: &str, object: Value) {
        self.state
            .objects
            .lock()
            .expect("lock")
            .insert(path.to_owned(), object);
    }

    /// Forgets the object at `path`: Anthropic answers 404 for it from now on.
    pub fn remove(&self, path: &str) {
        self.state.objects.lock().expect("lock").remove(path);
    }

    /// Stores a session the way `GET /v1/sessions/{id}` returns it.
    pub fn put_session(&self, id: &str, status: &str, title: &str) -> Value {
        let session = session(id, status, title);
        self.put(&format!("/v1/sessions/{id}"), session.clone());
        session
    }

    /// The session changes to `status` at `at` (RFC 3339): its `status` and `updated_at`
    /// move, and its event list gains the status event (stream names: `running` is
    /// `session.status_running`), `processed_at` being `at`. The session must be stored.
    pub fn set_status(&self, id: &str, status: &str, at: &str) {
        let path = format!("/v1/sessions/{id}");
        {
            let mut objects = self.state.objects.lock().expect("lock");
            let session = objects.get_mut(&path).expect("a stored session");
            session["status"] = json!(status);
            session["updated_at"] = json!(at);
        }
        let kind = match status {
            "running" => "session.status_running",
            "idle" => "session.status_idle",
            "rescheduling" => "session.status_rescheduled",
            _ => "session.status_terminated",
        };
        let mut events = self.state.session_events.lock().expect("lock");
        let list = events.entry(id.to_owned()).or_default();
        let mut event = json!({"id": format!("sevt_{:04}", list.len() + 1), "type": kind,
                               "processed_at": at});
        if kind == "session.status_idle" {
            event["stop_reason"] = json!({"type": "end_turn"});
        }
        list.push(event);
    }

    /// The next requests get these answers, one each, before any object is served.
    pub fn trouble(&self, trouble: Vec<Trouble>) {
        *self.state.trouble.lock().expect("lock") = trouble.into();
    }

    /// The key the API takes from now on (the team's stored one stops working).
    pub fn rotate_key(&self, key: &str) {
        *self.state.key.lock().expect("lock") = key.to_owned();
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// How many requests asked for `path`.
    pub fn requests_for(&self, path: &str) -> usize {
        self.received().iter().filter(|r| r.path == path).count()
    }
}

/// A session as the SDK's `BetaSession` has it.
pub fn session(id: &str, status: &str, title: &str) -> Value {
    json!({
        "id": id,
        "type": "session",
        "status": status,
        "title": title,
        "created_at": "2026-12-05T09:00:00Z",
        "updated_at": "2026-12-05T09:30:00Z",
        "agent": {"id": "agent_01TRIAGE", "type": "agent", "name": "Triage bot", "version": 3},
        "environment_id": "env_01BASE",
        "usage": {"input_tokens": 18250, "output_tokens": 2210,
                  "cache_read_input_tokens": 9000, "cache_creation_input_tokens": 0},
        "stats": {"active_seconds": 412.5, "duration_seconds": 1800.0},
        "metadata": {"ticket": "ENG-42"},
        "resources": [],
        "vault_ids": ["vlt_01MAIN"],
        "outcome_evaluations": []
    })
}

fn error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .insert_header(("request-id", "req_fake"))
        .json(json!({"type": "error", "error": {"type": kind, "message": message}}))
}

async fn answer(req: HttpRequest, state: web::Data<Arc<State>>) -> HttpResponse {
    state
        .received
        .lock()
        .expect("lock")
        .push(crate::fakes::received(&req, &[]));
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("x-api-key") != *state.key.lock().expect("lock") {
        return error(401, "authentication_error", "invalid x-api-key");
    }
    if header("anthropic-version").is_empty() {
        return error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    if !header("anthropic-beta")
        .split(',')
        .any(|b| b.trim() == BETA)
    {
        return error(
            400,
            "invalid_request_error",
            "The Managed Agents API requires the managed-agents-2026-04-01 beta header",
        );
    }
    let trouble = state.trouble.lock().expect("lock").pop_front();
    match trouble {
        Some(Trouble::RateLimited(seconds)) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("retry-after", seconds.to_string()))
                .json(json!({"type": "error",
                             "error": {"type": "rate_limit_error", "message": "Rate limited"}}));
        }
        Some(Trouble::Status(500)) => return error(500, "api_error", "Internal server error"),
        Some(Trouble::Status(503)) => return error(503, "overloaded_error", "Overloaded"),
        Some(Trouble::Status(status)) => return error(status, "api_error", "scripted"),
        Some(Trouble::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let path = req.path();
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    if path == "/v1/sessions" {
        let since = param(&query, "created_at[gte]")
            .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("created_at[gte] is RFC 3339"));
        let archived_too = param(&query, "include_archived") == Some("true");
        let mut sessions: Vec<Value> = state
            .objects
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p.starts_with("/v1/sessions/") && p.matches('/').count() == 3)
            .map(|(_, v)| v.clone())
            .filter(|s| {
                let created = chrono::DateTime::parse_from_rfc3339(&text(s, "created_at"));
                since.is_none_or(|since| created.is_ok_and(|c| c >= since))
            })
            .filter(|s| archived_too || s.get("archived_at").is_none_or(Value::is_null))
            .collect();
        sessions.sort_by(|a, b| {
            (text(a, "created_at"), text(a, "id")).cmp(&(text(b, "created_at"), text(b, "id")))
        });
        if param(&query, "order") != Some("asc") {
            sessions.reverse();
        }
        return page(sessions, &query);
    }
    if let Some(session) = path
        .strip_prefix("/v1/sessions/")
        .and_then(|rest| rest.strip_suffix("/events"))
    {
        if !state
            .objects
            .lock()
            .expect("lock")
            .contains_key(&format!("/v1/sessions/{session}"))
        {
            return error(404, "not_found_error", "Not found");
        }
        let types: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "types[]")
            .map(|(_, v)| v.as_str())
            .collect();
        let mut events: Vec<Value> = state
            .session_events
            .lock()
            .expect("lock")
            .get(session)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| types.is_empty() || types.contains(&text(e, "type").as_str()))
            .collect();
        if param(&query, "order") == Some("desc") {
            events.reverse();
        }
        return page(events, &query);
    }
    match state.objects.lock().expect("lock").get(path) {
        Some(object) => HttpResponse::Ok().json(object),
        None => error(404, "not_found_error", "Not found"),
    }
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn text(object: &Value, field: &str) -> String {
    object[field].as_str().unwrap_or_default().to_owned()
}

/// One page of `items` (already filtered and ordered): `limit` of them (default 20) from
/// the offset the `page` cursor holds.
fn page(items: Vec<Value>, query: &[(String, String)]) -> HttpResponse {
    let limit: usize = param(query, "limit")
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let start: usize = match param(query, "page") {
        None => 0,
        Some(cursor) => match cursor.strip_prefix("page_").and_then(|n| n.parse().ok()) {
            Some(start) => start,
            None => return error(400, "invalid_request_error", "page: invalid cursor"),
        },
    };
    let end = (start + limit).min(items.len());
    let data = items.get(start..end).unwrap_or_default();
    let next_page = (end < items.len()).then(|| format!("page_{end}"));
    let prev_page = (start > 0).then(|| format!("page_{}", start.saturating_sub(limit)));
    HttpResponse::Ok().json(json!({"data": data, "next_page": next_page, "prev_page": prev_page}))
}
