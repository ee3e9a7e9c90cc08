//! The destination the benchmark delivers to: answers 200 at once and records, per
//! delivery, when it arrived and how long it took from the webhook being sent (stamped
//! in the body).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};

/// One delivery at the sink.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The benchmark phase whose webhook it carries.
    pub phase: usize,
    /// From sending the webhook to receiving its delivery.
    pub latency: Duration,
    pub at: Instant,
}

#[derive(Default)]
pub struct Sink {
    pub arrivals: Mutex<Vec<Arrival>>,
}

impl Sink {
    /// The phase's deliveries so far.
    pub fn of_phase(&self, phase: usize) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .expect("lock")
            .iter()
            .filter(|a| a.phase == phase)
            .copied()
            .collect()
    }
}

pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

pub fn start() -> anyhow::Result<(Arc<Sink>, String)> {
    let sink = Arc::new(Sink::default());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/sink", listener.local_addr()?);
    let state = sink.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .default_service(web::to(receive))
    })
    .workers(1)
    .disable_signals()
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok((sink, url))
}

async fn receive(body: web::Bytes, sink: web::Data<Arc<Sink>>) -> HttpResponse {
    let at = Instant::now();
    let now = now_nanos();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
        let sent = value["sent_at_ns"]
            .as_str()
            .and_then(|s| s.parse::<u128>().ok())
            .unwrap_or(now);
        let phase = value["phase"].as_u64().unwrap_or(0) as usize;
        let latency =
            Duration::from_nanos(u64::try_from(now.saturating_sub(sent)).unwrap_or(u64::MAX));
        sink.arrivals
            .lock()
            .expect("lock")
            .push(Arrival { phase, latency, at });
    }
    HttpResponse::Ok().finish()
}
