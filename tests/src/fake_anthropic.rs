//! A stand-in for the Managed Agents API (anthropic.md §1.7, §1.8): one workspace's
//! objects behind one API key. It checks every request the way the real API does (the
//! key in `x-api-key`, `anthropic-version`, the managed-agents beta) and answers with the
//! real envelopes: `404 not_found_error`, `401 authentication_error`, `429
//! rate_limit_error` with `Retry-After`, `500 api_error`. Failures can be scripted ahead
//! of the objects.

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

    /// Stores an object at `path`.
    pub fn put(&self, path: &str, object: Value) {
        self.state
            .objects
            .lock()
            .expect("lock")
            .insert(path.to_owned(), object);
    }

    /// Stores a session the way `GET /v1/sessions/{id}` returns it.
    pub fn put_session(&self, id: &str, status: &str, title: &str) -> Value {
        let session = session(id, status, title);
        self.put(&format!("/v1/sessions/{id}"), session.clone());
        session
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
    if path == "/v1/sessions" {
        let limit: usize = req
            .query_string()
            .split('&')
            .find_map(|pair| pair.strip_prefix("limit="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(20);
        let objects = state.objects.lock().expect("lock");
        let data: Vec<&Value> = objects
            .iter()
            .filter(|(p, _)| p.starts_with("/v1/sessions/") && p.matches('/').count() == 3)
            .map(|(_, v)| v)
            .take(limit)
            .collect();
        return HttpResponse::Ok()
            .json(json!({"data": data, "next_page": null, "prev_page": null}));
    }
    match state.objects.lock().expect("lock").get(path) {
        Some(object) => HttpResponse::Ok().json(object),
        None => error(404, "not_found_error", "Not found"),
    }
}
