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
    // The settings a deployment has (SWITCHYARD_DELIVERY_SLOTS etc. apply).
    let running = switchyard::start(
        &cli.config,
        switchyard::Roles::ALL,
        cli.config.worker_settings(),
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
    let autovacuum = Autovacuum::on(admin_url).await?;
    let setup = Setup::start(admin_url, deliver).await?;
    let (database_url, pid, app) = (
        setup.server.database_url.clone(),
        setup.server.pid,
        setup.server.app.clone(),
    );
    let (client, hook, sink) = (&setup.client, &setup.hook, &setup.sink);
    let length = Duration::from_secs(seconds);

    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    warm_up(&setup, deliver).await?;
    if deliver {
        let e2e = idle(client, hook, sink).await;
        println!(
            "idle (one webhook every 20 ms, {} sent): e2e p50 {}  p99 {}",
            e2e.len(),
            ms(percentile(&e2e, 0.50)),
            ms(percentile(&e2e, 0.99))
        );
    }
    println!(
        "{seconds} s per level; 1 KiB GitHub-signed webhooks; {}; raw-insert/s is the median of 3 runs\n",
        if deliver {
            "one route to a local sink"
        } else {
            "no route (ingest alone)"
        }
    );
    println!(
        "{:>5} {:>11} {:>8} {:>8} {:>12} {:>6} {:>6} {:>8} {:>8} {:>9} {:>6} {:>8} {:>12} {:>6}",
        "conc",
        "accepted/s",
        "ack p50",
        "ack p99",
        "delivered/s",
        "kept",
        "left",
        "e2e p50",
        "e2e p99",
        "drained",
        "claim",
        "outcome",
        "raw-insert/s",
        "ratio"
    );
    // Baselines first, while Switchyard is idle, so a delivery backlog cannot slow them.
    let mut baselines = Vec::new();
    for &concurrency in levels {
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(raw_insert(&database_url, concurrency, length).await?);
        }
        runs.sort_by(|a, b| a.total_cmp(b));
        baselines.push(runs[1]);
    }
    let mut fastest = 0.0f64;
    for (phase, (&concurrency, raw)) in levels.iter().zip(baselines).enumerate() {
        let before = Batches::read(client, &app).await?;
        let result = drive(client, hook, concurrency, length, phase).await;
        let accepted_per_s = result.accepted as f64 / result.elapsed.as_secs_f64();
        fastest = fastest.max(accepted_per_s);
        let pace = Pace::measure(sink, phase, &result, deliver).await;
        let batches = Batches::read(client, &app).await?.since(&before);
        println!(
            "{:>5} {:>11.0} {:>8} {:>8} {:>12.0} {:>6.2} {:>6} {:>8} {:>8} {:>9} {:>6.1} {:>8.1} {:>12.0} {:>6.2}{}",
            result.concurrency,
            accepted_per_s,
            ms(percentile(&result.acks, 0.50)),
            ms(percentile(&result.acks, 0.99)),
            pace.delivered as f64 / result.elapsed.as_secs_f64(),
            pace.kept,
            pace.left,
            ms(percentile(&pace.e2e, 0.50)),
            ms(percentile(&pace.e2e, 0.99)),
            secs(pace.drained),
            batches.claim,
            batches.outcome,
            raw,
            accepted_per_s / raw,
            if result.errors > 0 {
                format!("  ({} errors)", result.errors)
            } else {
                String::new()
            },
        );
    }
    if deliver {
        // Open loop at half the best rate measured above: latency when not saturated.
        let rate = fastest / 2.0;
        let phase = levels.len();
        let result = drive_at(client, hook, rate, length, phase).await;
        let pace = Pace::measure(sink, phase, &result, deliver).await;
        println!(
            "\nopen loop at half the best rate ({rate:.0}/s, {} sent): accepted/s {:.0}, ack p99 {}, kept {:.2}, e2e p50 {}  p99 {}",
            result.accepted + result.errors,
            result.accepted as f64 / result.elapsed.as_secs_f64(),
            ms(percentile(&result.acks, 0.99)),
            pace.kept,
            ms(percentile(&pace.e2e, 0.50)),
            ms(percentile(&pace.e2e, 0.99)),
        );
    }
    println!(
        "\npeak RSS of the Switchyard process: {} MiB",
        memory_kib(pid, "VmHWM") / 1024
    );
    println!(
        "kept: deliveries that reached the sink while the level ran / webhooks accepted in it; \
         left: accepted but not delivered when it ended; drained: how long those took after"
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
    setup.stop(admin_url).await?;
    autovacuum.restore(admin_url).await
}

/// Fills the fresh database with a few seconds of traffic, lets it drain, and analyzes
/// it. Until autovacuum's first analyze, a new database's statistics say its tables are
/// empty, and the plans cached on that say scan them whole: a production database is
/// long past that minute, so the benchmark measures after it.
pub async fn warm_up(setup: &Setup, deliver: bool) -> anyhow::Result<()> {
    const WARM_UP: usize = usize::MAX - 1;
    let warm = drive(
        &setup.client,
        &setup.hook,
        16,
        Duration::from_secs(5),
        WARM_UP,
    )
    .await;
    if deliver {
        wait_delivered(&setup.sink, WARM_UP, warm.accepted).await;
    }
    setup.pool.execute("ANALYZE").await?;
    println!(
        "warm-up: {} webhooks, then ANALYZE (as autovacuum does within its first minute)",
        warm.accepted
    );
    Ok(())
}

/// How deliveries kept pace with a phase's webhooks.
struct Pace {
    /// Deliveries that reached the sink before the phase ended.
    delivered: usize,
    /// `delivered` over the webhooks accepted in the phase.
    kept: f64,
    /// Accepted but not yet delivered when the phase ended.
    left: usize,
    /// How long those took to arrive after the phase ended.
    drained: Duration,
    /// Every delivery's end-to-end latency, the drained ones included.
    e2e: Vec<Duration>,
}

impl Pace {
    async fn measure(sink: &Arc<sink::Sink>, phase: usize, result: &Phase, deliver: bool) -> Pace {
        let ended = Instant::now();
        let delivered = sink
            .of_phase(phase)
            .iter()
            .filter(|a| a.at <= ended)
            .count();
        let expected = if deliver { result.accepted } else { 0 };
        let drained = wait_delivered(sink, phase, expected).await;
        Pace {
            delivered,
            kept: if expected == 0 {
                0.0
            } else {
                delivered as f64 / expected as f64
            },
            left: expected.saturating_sub(delivered),
            drained,
            e2e: phase_latencies(sink, phase),
        }
    }
}

/// Mean claim and outcome batch sizes, from the server's summaries.
#[derive(Default)]
struct Batches {
    claim: f64,
    outcome: f64,
    sums: [f64; 4],
}

impl Batches {
    async fn read(client: &reqwest::Client, app: &str) -> anyhow::Result<Batches> {
        let text = client
            .get(format!("{app}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(Batches {
            sums: [
                value("switchyard_claim_batch_size_sum"),
                value("switchyard_claim_batch_size_count"),
                value("switchyard_outcome_batch_size_sum"),
                value("switchyard_outcome_batch_size_count"),
            ],
            ..Batches::default()
        })
    }

    fn since(self, before: &Batches) -> Batches {
        let d: Vec<f64> = (0..4).map(|i| self.sums[i] - before.sums[i]).collect();
        let mean = |sum: f64, count: f64| if count > 0.0 { sum / count } else { 0.0 };
        Batches {
            claim: mean(d[0], d[1]),
            outcome: mean(d[2], d[3]),
            sums: self.sums,
        }
    }
}

/// Turns autovacuum on for the run (as any production server has it) and back off
/// afterwards if it was off.
pub struct Autovacuum {
    was_on: bool,
}

impl Autovacuum {
    pub async fn on(admin_url: &str) -> anyhow::Result<Autovacuum> {
        let mut admin = PgConnection::connect(admin_url).await?;
        let setting: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
            .fetch_one(&mut admin)
            .await?;
        let was_on = setting == "on";
        if !was_on {
            admin.execute("ALTER SYSTEM SET autovacuum = on").await?;
            admin.execute("SELECT pg_reload_conf()").await?;
            println!("autovacuum turned on for the run");
        }
        Ok(Autovacuum { was_on })
    }

    pub async fn restore(self, admin_url: &str) -> anyhow::Result<()> {
        if !self.was_on {
            let mut admin = PgConnection::connect(admin_url).await?;
            admin.execute("ALTER SYSTEM RESET autovacuum").await?;
            admin.execute("SELECT pg_reload_conf()").await?;
        }
        Ok(())
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Sends one signed webhook of `phase`; its ack time if it was accepted.
pub async fn send_one(
    client: &reqwest::Client,
    hook: &str,
    phase: usize,
    lane: usize,
    n: u64,
    guid: String,
) -> Option<Duration> {
    let body = payload(phase, lane, n);
    let signature = sign(&body);
    let sent = Instant::now();
    let res = client
        .post(hook)
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", guid)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => Some(sent.elapsed()),
        _ => None,
    }
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
                let guid = format!("{phase}-{lane}-{n}");
                match send_one(&client, &hook, phase, lane, n, guid).await {
                    Some(ack) => {
                        acks.push(ack);
                        accepted += 1;
                    }
                    None => errors += 1,
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

/// Sends webhooks open loop at `rate` a second for `length`, whatever the answers take
/// (at most 512 in flight), then waits for the answers still due.
pub async fn drive_at(
    client: &reqwest::Client,
    hook: &str,
    rate: f64,
    length: Duration,
    phase: usize,
) -> Phase {
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(512));
    let results = Arc::new(std::sync::Mutex::new(Phase {
        concurrency: 0,
        accepted: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        acks: Vec::new(),
    }));
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let (mut owed, mut n) = (0.0f64, 0u64);
    while started.elapsed() < length {
        tick.tick().await;
        owed += rate * 0.005;
        while owed >= 1.0 {
            owed -= 1.0;
            n += 1;
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (client, hook, results) = (client.clone(), hook.to_owned(), results.clone());
            // Unique across calls: the soak calls this once per window.
            let guid = format!("open-{phase}-{n}-{}", now_nanos());
            tokio::spawn(async move {
                let ack = send_one(&client, &hook, phase, 0, n, guid).await;
                let mut results = results.lock().expect("lock");
                match ack {
                    Some(ack) => {
                        results.acks.push(ack);
                        results.accepted += 1;
                    }
                    None => results.errors += 1,
                }
                drop(permit);
            });
        }
    }
    let _ = permits.acquire_many(512).await;
    let mut phase = std::mem::replace(
        &mut *results.lock().expect("lock"),
        Phase {
            concurrency: 0,
            accepted: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            acks: Vec::new(),
        },
    );
    phase.elapsed = started.elapsed();
    phase
}

/// End-to-end latency when Switchyard is idle: 200 webhooks, one every 20 ms.
async fn idle(client: &reqwest::Client, hook: &str, sink: &Arc<sink::Sink>) -> Vec<Duration> {
    const PHASE: usize = usize::MAX;
    for n in 0..200u64 {
        send_one(client, hook, PHASE, 0, n, format!("idle-{n}")).await;
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
    sink.of_phase(phase).len()
}

fn phase_latencies(sink: &Arc<sink::Sink>, phase: usize) -> Vec<Duration> {
    sink.of_phase(phase).iter().map(|a| a.latency).collect()
}

/// The baseline: the same payload, one INSERT and commit per request, `concurrency`
/// connections.
async fn raw_insert(
    database_url: &str,
    concurrency: usize,
    length: Duration,
) -> anyhow::Result<f64> {
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
            let (mut inserted, mut n) = (0usize, 0u64);
            while Instant::now() < deadline {
                n += 1;
                let done = sqlx::query("INSERT INTO raw_events (id, body) VALUES ($1, $2)")
                    .bind(format!("{lane}-{n}-{}", now_nanos()))
                    .bind(payload(0, lane, n))
                    .execute(&pool)
                    .await;
                inserted += usize::from(done.is_ok());
            }
            inserted
        })
    });
    let inserted: usize = futures::future::join_all(loops)
        .await
        .into_iter()
        .flatten()
        .sum();
    let rate = inserted as f64 / started.elapsed().as_secs_f64();
    pool.execute("DROP TABLE raw_events").await?;
    pool.close().await;
    Ok(rate)
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
