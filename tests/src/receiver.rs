//! A destination for tests: records every request and answers from a script (the last
//! reply repeats). Tests wait on it with a deadline instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Hold the answer this long (a slow or hung receiver).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The query string, as sent (percent-encoded).
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    arrived: Notify,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub base: String,
}

impl Receiver {
    pub async fn start(script: Vec<Reply>) -> Receiver {
        let inner = Arc::new(Inner {
            script: Mutex::new(script.into()),
            ..Default::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = inner.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Receiver { inner, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Replaces the script: later requests get these replies (the last one repeats).
    pub fn script(&self, replies: Vec<Reply>) {
        *self.inner.script.lock().expect("lock") = replies.into();
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        wait_for(&self.inner.received, &self.inner.arrived, n, within).await
    }

    /// Waits until every delivery in `expected` arrived at least once, counted by the
    /// `switchyard-delivery-id` header; panics after `within`. Returns how many times
    /// each arrived (more than once is a duplicate send, which at-least-once allows).
    pub async fn wait_for_deliveries(
        &self,
        expected: &[String],
        within: Duration,
    ) -> HashMap<String, usize> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for r in self.received() {
                if let Some(id) = r.headers.get("switchyard-delivery-id") {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
            let arrived = expected.iter().filter(|id| seen.contains_key(*id)).count();
            if arrived == expected.len() {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{arrived} of {} deliveries arrived",
                expected.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Waits until `received` holds at least `n` requests, woken by `arrived`; panics after
/// `within`.
pub(crate) async fn wait_for(
    received: &Mutex<Vec<Received>>,
    arrived: &Notify,
    n: usize,
    within: Duration,
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let notified = arrived.notified();
        let got = received.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            panic!("expected {n} requests within {within:?}, got {}", got.len());
        }
    }
}

async fn record(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Inner>>) -> HttpResponse {
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
    state.received.lock().expect("lock").push(Received {
        at: Instant::now(),
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers,
        body: body.to_vec(),
    });
    state.arrived.notify_waiters();
    let reply = {
        let mut script = state.script.lock().expect("lock");
        if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        }
    }
    .unwrap_or_else(|| Reply::status(200));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut res =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).expect("status"));
    for (name, value) in &reply.headers {
        res.insert_header((name.as_str(), value.as_str()));
    }
    res.body(reply.body)
}
