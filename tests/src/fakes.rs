//! Stand-ins for the third parties Switchyard calls and tests cannot reach: the Claude
//! Code routines API and Slack's incoming webhooks. Each checks requests the way the real
//! service does (anthropic.md §2; Slack's documented errors) and answers with the real
//! status codes, bodies and `Retry-After`, or as a test scripts it.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::receiver::Received;

/// What the fake does with the next request that passes its checks.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with a new session.
    Fire,
    /// An error status with the API's envelope (and `Retry-After` seconds for 429/503).
    Error {
        status: u16,
        kind: &'static str,
        message: &'static str,
        retry_after: Option<u64>,
    },
    /// Reads the request, then never answers.
    Hang,
}

impl Answer {
    pub fn paused() -> Answer {
        Answer::Error {
            status: 400,
            kind: "invalid_request_error",
            message: "This routine is paused.",
            retry_after: None,
        }
    }
    pub fn rate_limited(seconds: u64) -> Answer {
        Answer::Error {
            status: 429,
            kind: "rate_limit_error",
            message: "Routine run limit reached.",
            retry_after: Some(seconds),
        }
    }
    pub fn status(status: u16) -> Answer {
        let kind = match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            500 => "api_error",
            503 => "overloaded_error",
            _ => "invalid_request_error",
        };
        Answer::Error {
            status,
            kind,
            message: "scripted",
            retry_after: None,
        }
    }
}

struct Shared {
    script: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    sessions: Mutex<u32>,
}

/// Scripted answers; the last one repeats.
fn next<T: Clone>(script: &Mutex<VecDeque<T>>, fallback: T) -> T {
    let mut script = script.lock().expect("lock");
    if script.len() > 1 {
        script.pop_front().unwrap_or(fallback)
    } else {
        script.front().cloned().unwrap_or(fallback)
    }
}

fn record(shared: &Shared, req: &HttpRequest, body: &[u8]) {
    shared
        .received
        .lock()
        .expect("lock")
        .push(received(req, body));
    shared.arrived.notify_waiters();
}

/// A request as a fake records it.
pub(crate) fn received(req: &HttpRequest, body: &[u8]) -> Received {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    Received {
        at: std::time::Instant::now(),
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers,
        body: body.to_vec(),
    }
}

/// A fake of `POST /v1/claude_code/routines/{trig_…}/fire` for one routine and its token.
#[derive(Clone)]
pub struct FakeRoutines {
    shared: Arc<Shared>,
    pub base: String,
    pub token: String,
}

impl FakeRoutines {
    pub async fn start(token: &str, script: Vec<Answer>) -> FakeRoutines {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            received: Mutex::default(),
            arrived: Notify::new(),
            sessions: Mutex::new(0),
        });
        let base = serve({
            let shared = shared.clone();
            let token = token.to_owned();
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(web::Data::new((shared.clone(), token.clone())))
                    .route(
                        "/v1/claude_code/routines/{routine}/fire",
                        web::post().to(fire),
                    );
            }
        });
        FakeRoutines {
            shared,
            base,
            token: token.to_owned(),
        }
    }

    /// The fire URL of routine `trig_…`.
    pub fn fire_url(&self, routine: &str) -> String {
        format!("{}/v1/claude_code/routines/{routine}/fire", self.base)
    }

    pub fn script(&self, answers: Vec<Answer>) {
        *self.shared.script.lock().expect("lock") = answers.into();
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        wait_for(&self.shared, n, within).await
    }
}

fn error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({"type": "error", "error": {"type": kind, "message": message}}))
}

async fn fire(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<(Arc<Shared>, String)>,
) -> HttpResponse {
    let (shared, token) = state.get_ref();
    record(shared, &req, &body);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if header("authorization") != Some(format!("Bearer {token}").as_str()) {
        return error(401, "authentication_error", "Invalid bearer token.");
    }
    let beta_ok = header("anthropic-beta").is_some_and(|b| {
        b.split(',')
            .any(|v| v.trim() == "experimental-cc-routine-2026-04-01")
    });
    if !beta_ok {
        return error(
            400,
            "invalid_request_error",
            "Missing or invalid anthropic-beta header.",
        );
    }
    if header("anthropic-version").is_none() {
        return error(
            400,
            "invalid_request_error",
            "anthropic-version header is required.",
        );
    }
    let text_ok = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|json| {
            json.get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.chars().count() <= 65_536)
        });
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) || !text_ok {
        return error(
            400,
            "invalid_request_error",
            "text must be a string of at most 65536 characters.",
        );
    }
    match next(&shared.script, Answer::Fire) {
        Answer::Fire => {
            let n = {
                let mut sessions = shared.sessions.lock().expect("lock");
                *sessions += 1;
                *sessions
            };
            let id = format!("session_01FAKE{n:020}");
            HttpResponse::Ok().json(json!({
                "type": "routine_fire",
                "claude_code_session_id": id,
                "claude_code_session_url": format!("https://claude.ai/code/{id}"),
            }))
        }
        Answer::Error {
            status,
            kind,
            message,
            retry_after,
        } => {
            let mut res = error(status, kind, message);
            if let Some(seconds) = retry_after {
                res.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(seconds),
                );
            }
            res
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
    }
}

/// What a fake Slack webhook answers: Slack's plain-text bodies.
#[derive(Debug, Clone)]
pub enum SlackAnswer {
    Ok,
    /// Status and Slack's error text (`no_service`, `channel_is_archived`, …).
    Error(u16, &'static str),
    RateLimited(u64),
}

/// A fake Slack incoming webhook at `/services/T…/B…/…`.
#[derive(Clone)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    slack_script: Arc<Mutex<VecDeque<SlackAnswer>>>,
    pub base: String,
}

impl FakeSlack {
    pub async fn start(script: Vec<SlackAnswer>) -> FakeSlack {
        let shared = Arc::new(Shared {
            script: Mutex::default(),
            received: Mutex::default(),
            arrived: Notify::new(),
            sessions: Mutex::new(0),
        });
        let slack_script = Arc::new(Mutex::new(script.into()));
        let base = serve({
            let shared = shared.clone();
            let slack_script = slack_script.clone();
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(web::Data::new((shared.clone(), slack_script.clone())))
                    .route("/services/{rest:.*}", web::post().to(slack));
            }
        });
        FakeSlack {
            shared,
            slack_script,
            base,
        }
    }

    pub fn webhook_url(&self) -> String {
        format!(
            "{}/services/T0001/B0001/abcdefghijklmnopqrstuvwx",
            self.base
        )
    }

    pub fn script(&self, answers: Vec<SlackAnswer>) {
        *self.slack_script.lock().expect("lock") = answers.into();
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        wait_for(&self.shared, n, within).await
    }
}

type SlackState = (Arc<Shared>, Arc<Mutex<VecDeque<SlackAnswer>>>);

async fn slack(req: HttpRequest, body: web::Bytes, state: web::Data<SlackState>) -> HttpResponse {
    let (shared, script) = state.get_ref();
    record(shared, &req, &body);
    let valid = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|json| json.get("text").is_some() || json.get("blocks").is_some());
    if !valid {
        return HttpResponse::BadRequest().body("invalid_payload");
    }
    match next(script, SlackAnswer::Ok) {
        SlackAnswer::Ok => HttpResponse::Ok().body("ok"),
        SlackAnswer::Error(status, text) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
                .body(text)
        }
        SlackAnswer::RateLimited(seconds) => HttpResponse::TooManyRequests()
            .insert_header(("retry-after", seconds.to_string()))
            .body("rate_limited"),
    }
}

pub(crate) fn serve(
    configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || App::new().configure(configure.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    tokio::spawn(server);
    base
}

async fn wait_for(shared: &Shared, n: usize, within: Duration) -> Vec<Received> {
    crate::receiver::wait_for(&shared.received, &shared.arrived, n, within).await
}
