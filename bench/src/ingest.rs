//! The ingest benchmark (see the crate doc) and the child process it measures.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::sink::{self, now_nanos};

const SECRET: &str = "bench-secret";
/// How long deliveries may take to catch up after a phase before they are counted lost.
const DRAIN: Duration = Duration::from_secs(60);

/// Child mode: Switchyard with every role on port 0; prints the port, then serves.
pub async fn serve(database_url: &str) -> anyhow::Result<()> {
    use clap::Parser;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let cli = switchyard::config::Cli::try_parse_from([
        "switchyard",
        "--database-url",
        database_url,
        "--public-url",
        &format!("http://127.0.0.1:{port}"),
        "--allow-private-destinations",
        "true",
    ])?;
    let running = switchyard::start(
        &cli.config,
        switchyard::Roles::ALL,
        switchyard::WorkerSettings::default(),
        listener,
    )
    .await?;
    println!("{port}");
    running.wait().await
}

/// Switchyard as a child process of the benchmark, on a fresh database.
pub struct Server {
    database: String,
    pub database_url: String,
    pub app: String,
    pub pid: u32,
    child: tokio::process::Child,
}

impl Server {
    pub async fn start(admin_url: &str) -> anyhow::Result<Server> {
        let database = format!("switchyard_bench_{}", std::process::id());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
            )))
            .await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(admin_url);
        let database_url = format!("{base}/{database}");
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["serve", &database_url])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("child pid")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let port: u16 = BufReader::new(stdout)
            .lines()
            .next_line()
            .await?
            .context("child port")?
            .parse()?;
        Ok(Server {
            database,
            database_url,
            app: format!("http://127.0.0.1:{port}"),
            pid,
            child,
        })
    }

    /// Ends the child and drops its database.
    pub async fn stop(mut self, admin_url: &str) -> anyhow::Result<()> {
        self.child.kill().await.ok();
        let mut admin = PgConnection::connect(admin_url).await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            )))
            .await?;
        Ok(())
    }
}

pub struct Phase {
    pub concurrency: usize,
    pub accepted: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub acks: Vec<Duration>,
}

/// A fresh Switchyard with one team, a GitHub source and (when `deliver`) a route from
/// it to a local sink.
pub struct Setup {
    pub server: Server,
    pub pool: PgPool,
    pub sink: Arc<sink::Sink>,
    pub client: reqwest::Client,
    /// The source's ingest URL.
    pub hook: String,
}

impl Setup {
    pub async fn start(admin_url: &str, deliver: bool) -> anyhow::Result<Setup> {
        let server = Server::start(admin_url).await?;
        let app = server.app.clone();
        let pool = PgPool::connect(&server.database_url).await?;
        let team = switchyard_domain::store::teams::insert(&pool, "bench", "Bench").await?;
        let (_, key) = switchyard_domain::store::api_keys::create(&pool, &team.id, "bench").await?;
        let (sink, sink_url) = sink::start()?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let api = |path: &str, body: serde_json::Value| {
            client
                .post(format!("{app}/api/v1/{path}"))
                .bearer_auth(&key)
                .json(&body)
                .send()
        };
        let source: serde_json::Value = api(
            "sources",
            json!({"name": "gh", "provider": "github", "secret": SECRET}),
        )
        .await?
        .json()
        .await?;
        let destination: serde_json::Value = api(
            "destinations",
            json!({"name": "sink", "kind": "http", "url": sink_url}),
        )
        .await?
        .json()
        .await?;
        if deliver {
            api(
                "routes",
                json!({"name": "all", "source_id": source["id"], "destination_id": destination["id"]}),
            )
            .await?;
        }
        let hook = source["ingest_url"]
            .as_str()
            .context("ingest_url")?
            .to_owned();
        Ok(Setup {
            server,
            pool,
            sink,
            client,
            hook,
        })
    }

    /// Ends Switchyard and drops its database.
    pub async fn stop(self, admin_url: &str) -> anyhow::Result<()> {
        self.pool.close().await;
        self.server.stop(admin_url).await
    }
}

pub async fn run(
    admin_url: &str,
    seconds: u64,
    levels: &[usize],
    deliver: bool,
) -> anyhow::Result<()> {
    let setup = Setup::start(admin_url, deliver).await?;
    let (database_url, pid, app) = (
        setup.server.database_url.clone(),
        setup.server.pid,
        setup.server.app.clone(),
    );
    let (client, hook, sink) = (&setup.client, &setup.hook, &setup.sink);

    if deliver {
        let e2e = idle(client, hook, sink).await;
        println!(
            "idle (one webhook every 20 ms, {} sent): e2e p50 {}  p99 {}\n",
            e2e.len(),
            ms(percentile(&e2e, 0.50)),
            ms(percentile(&e2e, 0.99))
        );
    }
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!(
        "{seconds} s per level; 1 KiB GitHub-signed webhooks; {}\n",
        if deliver {
            "one route to a local sink"
        } else {
            "no route (ingest alone)"
        }
    );
    println!(
        "{:>5} {:>11} {:>9} {:>9} {:>13} {:>9} {:>9} {:>12} {:>9} {:>9} {:>8}",
        "conc",
        "accepted/s",
        "ack p50",
        "ack p99",
        "delivered/s",
        "e2e p50",
        "e2e p99",
        "raw-insert/s",
        "raw p50",
        "raw p99",
        "ratio"
    );
    // Baselines first, while Switchyard is idle, so a delivery backlog cannot slow them.
    let mut baselines = Vec::new();
    for &concurrency in levels {
        baselines.push(raw_insert(&database_url, concurrency, Duration::from_secs(seconds)).await?);
    }
    for ((phase, &concurrency), (raw, raw_latencies)) in levels.iter().enumerate().zip(baselines) {
        let result = drive(
            client,
            hook,
            concurrency,
            Duration::from_secs(seconds),
            phase,
        )
        .await;
        let expected = if deliver { result.accepted } else { 0 };
        let delivered_in = wait_delivered(sink, phase, expected).await;
        let e2e = phase_latencies(sink, phase);
        let accepted_per_s = result.accepted as f64 / result.elapsed.as_secs_f64();
        println!(
            "{:>5} {:>11.0} {:>9} {:>9} {:>13.0} {:>9} {:>9} {:>12.0} {:>9} {:>9} {:>8.2}{}",
            result.concurrency,
            accepted_per_s,
            ms(percentile(&result.acks, 0.50)),
            ms(percentile(&result.acks, 0.99)),
            e2e.len() as f64 / (result.elapsed + delivered_in).as_secs_f64(),
            ms(percentile(&e2e, 0.50)),
            ms(percentile(&e2e, 0.99)),
            raw,
            ms(percentile(&raw_latencies, 0.50)),
            ms(percentile(&raw_latencies, 0.99)),
            accepted_per_s / raw,
            if result.errors > 0 {
                format!("  ({} errors)", result.errors)
            } else {
                String::new()
            },
        );
    }
    println!(
        "\npeak RSS of the Switchyard process: {} MiB",
        memory_kib(pid, "VmHWM") / 1024
    );

    let metrics = client
        .get(format!("{app}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("switchyard_") && l.contains("quantile=\"0.5\"")
            || l.contains("quantile=\"0.99\"")
    }) {
        println!("{line}");
    }
    setup.stop(admin_url).await
}

/// Sends webhooks from `concurrency` loops for `length`.
pub async fn drive(
    client: &reqwest::Client,
    hook: &str,
    concurrency: usize,
    length: Duration,
    phase: usize,
) -> Phase {
    let started = Instant::now();
    let deadline = started + length;
    let loops = (0..concurrency).map(|lane| {
        let (client, hook) = (client.clone(), hook.to_owned());
        tokio::spawn(async move {
            let (mut acks, mut accepted, mut errors) = (Vec::new(), 0, 0);
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = payload(phase, lane, n);
                let signature = sign(&body);
                let sent = Instant::now();
                let res = client
                    .post(&hook)
                    .header("content-type", "application/json")
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", format!("{phase}-{lane}-{n}"))
                    .header("x-hub-signature-256", signature)
                    .body(body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        acks.push(sent.elapsed());
                        accepted += 1;
                    }
                    _ => errors += 1,
                }
            }
            (acks, accepted, errors)
        })
    });
    let mut phase_result = Phase {
        concurrency,
        accepted: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        acks: Vec::new(),
    };
    for lane in futures::future::join_all(loops).await.into_iter().flatten() {
        phase_result.acks.extend(lane.0);
        phase_result.accepted += lane.1;
        phase_result.errors += lane.2;
    }
    phase_result.elapsed = started.elapsed();
    phase_result
}

/// End-to-end latency when Switchyard is idle: 200 webhooks, one every 20 ms.
async fn idle(client: &reqwest::Client, hook: &str, sink: &Arc<sink::Sink>) -> Vec<Duration> {
    const PHASE: usize = usize::MAX;
    for n in 0..200u64 {
        let body = payload(PHASE, 0, n);
        let _ = client
            .post(hook)
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", format!("idle-{n}"))
            .header("x-hub-signature-256", sign(&body))
            .body(body)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_delivered(sink, PHASE, 200).await;
    phase_latencies(sink, PHASE)
}

/// A 1 KiB issues event stamped with its send time.
pub fn payload(phase: usize, lane: usize, n: u64) -> Vec<u8> {
    let mut body = json!({
        "action": "opened",
        "phase": phase,
        "sent_at_ns": now_nanos().to_string(),
        "issue": {"number": n, "title": format!("lane {lane}"), "body": ""},
    });
    let size = body.to_string().len();
    body["issue"]["body"] = json!("x".repeat(1024usize.saturating_sub(size)));
    body.to_string().into_bytes()
}

pub fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Waits until the phase's deliveries have all arrived (or `DRAIN` passes); returns the
/// time from the phase's end to the last arrival plus the phase itself, for a rate.
pub async fn wait_delivered(sink: &Arc<sink::Sink>, phase: usize, expected: usize) -> Duration {
    let started = Instant::now();
    while phase_count(sink, phase) < expected && started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn phase_count(sink: &Arc<sink::Sink>, phase: usize) -> usize {
    sink.arrivals
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| *p == phase)
        .count()
}

fn phase_latencies(sink: &Arc<sink::Sink>, phase: usize) -> Vec<Duration> {
    sink.arrivals
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| *p == phase)
        .map(|(_, l)| *l)
        .collect()
}

/// The baseline: the same payload, one INSERT and commit per request, `concurrency`
/// connections.
async fn raw_insert(
    database_url: &str,
    concurrency: usize,
    length: Duration,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    // Reached the same way Switchyard reaches it (a local server by its Unix socket).
    let options = switchyard::db::prepare(database_url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(64))
        .connect_with(options)
        .await?;
    pool.execute(
        "CREATE TABLE IF NOT EXISTS raw_events (id text PRIMARY KEY, body bytea NOT NULL)",
    )
    .await?;
    let started = Instant::now();
    let deadline = started + length;
    let loops = (0..concurrency).map(|lane| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let sent = Instant::now();
                let inserted = sqlx::query("INSERT INTO raw_events (id, body) VALUES ($1, $2)")
                    .bind(format!("{lane}-{n}-{}", now_nanos()))
                    .bind(payload(0, lane, n))
                    .execute(&pool)
                    .await;
                if inserted.is_ok() {
                    latencies.push(sent.elapsed());
                }
            }
            latencies
        })
    });
    let latencies: Vec<Duration> = futures::future::join_all(loops)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    pool.execute("DROP TABLE raw_events").await?;
    pool.close().await;
    Ok((rate, latencies))
}

pub fn percentile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// A memory figure of a process from `/proc/{pid}/status`, in KiB: `VmHWM` is the peak
/// resident set, `VmRSS` the current one.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| {
                    l.strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with(':'))
                })
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
