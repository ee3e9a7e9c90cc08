//! The soak benchmark: measure the maximum ingest rate (concurrency 16, deliveries on),
//! then send at half of it, open loop, for a long stretch, and print every window what
//! drifts when something leaks or falls behind: the server's RSS, ack p50/p99, deliveries
//! per second, end-to-end p99, and the delivery queue's depth and oldest due task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_domain::store::queue::DELIVERIES;
use switchyard_domain::store::stats;
use tokio::sync::Semaphore;

use crate::ingest::{self, Setup, ms, percentile};

/// Requests allowed in flight at once; past it the sender falls behind (and says so)
/// rather than piling up without bound.
const IN_FLIGHT: usize = 512;
/// How often the sender wakes to send what the rate owes.
const TICK: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Window {
    acks: Vec<Duration>,
    errors: usize,
}

pub async fn run(
    admin_url: &str,
    minutes: u64,
    window: Duration,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let setup = Setup::start(admin_url, true).await?;
    println!(
        "machine: {} cores, {}",
        ingest::num_cpus(),
        ingest::cpu_model()
    );
    let rate = match rate {
        Some(rate) => rate,
        None => {
            let burst =
                ingest::drive(&setup.client, &setup.hook, 16, Duration::from_secs(10), 0).await;
            let max = burst.accepted as f64 / burst.elapsed.as_secs_f64();
            println!("maximum ingest (10 s at concurrency 16, delivering): {max:.0}/s");
            // Let the burst's backlog drain so the soak starts from an empty queue.
            ingest::wait_delivered(&setup.sink, 0, burst.accepted).await;
            max / 2.0
        }
    };
    println!(
        "soak: {rate:.0} webhooks/s (open loop, 1 KiB, one route to a local sink) for {minutes} min; a line per {} s\n",
        window.as_secs()
    );
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>9} {:>12} {:>9} {:>7} {:>11} {:>8}",
        "t",
        "sent/s",
        "errors",
        "ack p50",
        "ack p99",
        "delivered/s",
        "e2e p99",
        "queue",
        "oldest due",
        "RSS MiB"
    );

    let stats = Arc::new(Mutex::new(Window::default()));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let (mut owed, mut n, mut sent_in_window) = (0.0f64, 0u64, 0usize);
    let mut next_report = started + window;
    let mut arrivals_seen = setup.sink.arrivals.lock().expect("lock").len();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut peak_queue = 0i64;
    while Instant::now() < end {
        tick.tick().await;
        owed += rate * TICK.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            n += 1;
            sent_in_window += 1;
            let permit = permits.clone().acquire_owned().await?;
            let (client, hook, stats) = (setup.client.clone(), setup.hook.clone(), stats.clone());
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let body = ingest::payload(1, 0, n);
                let signature = ingest::sign(&body);
                let sent = Instant::now();
                let res = client
                    .post(&hook)
                    .header("content-type", "application/json")
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", format!("soak-{n}"))
                    .header("x-hub-signature-256", signature)
                    .body(body)
                    .send()
                    .await;
                let mut window = stats.lock().expect("lock");
                match res {
                    Ok(r) if r.status().is_success() => {
                        window.acks.push(sent.elapsed());
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => window.errors += 1,
                }
                drop(permit);
            });
        }
        if Instant::now() >= next_report {
            let Window { acks, errors } = std::mem::take(&mut *stats.lock().expect("lock"));
            let arrived: Vec<Duration> = {
                let arrivals = setup.sink.arrivals.lock().expect("lock");
                let fresh = arrivals[arrivals_seen..]
                    .iter()
                    .filter(|(phase, _)| *phase == 1)
                    .map(|(_, d)| *d)
                    .collect();
                arrivals_seen = arrivals.len();
                fresh
            };
            let depth = stats::queues(&setup.pool, chrono::Utc::now())
                .await?
                .into_iter()
                .find(|q| q.queue == DELIVERIES);
            let (queue, oldest) = depth.map_or((0, 0.0), |q| {
                (q.pending, q.oldest_seconds.unwrap_or(0.0).max(0.0))
            });
            peak_queue = peak_queue.max(queue);
            let secs = window.as_secs_f64();
            println!(
                "{:>5}s {:>9.0} {:>8} {:>9} {:>9} {:>12.0} {:>9} {:>7} {:>10.1}s {:>8}",
                started.elapsed().as_secs(),
                sent_in_window as f64 / secs,
                errors,
                ms(percentile(&acks, 0.50)),
                ms(percentile(&acks, 0.99)),
                arrived.len() as f64 / secs,
                ms(percentile(&arrived, 0.99)),
                queue,
                oldest,
                ingest::memory_kib(setup.server.pid, "VmRSS") / 1024,
            );
            sent_in_window = 0;
            next_report += window;
        }
    }
    // Whatever is still queued: how long it takes to drain once the load stops.
    let _ = permits.acquire_many(IN_FLIGHT as u32).await?;
    let draining = Instant::now();
    ingest::wait_delivered(&setup.sink, 1, acknowledged.load(Ordering::Relaxed)).await;
    let delivered = setup
        .sink
        .arrivals
        .lock()
        .expect("lock")
        .iter()
        .filter(|(phase, _)| *phase == 1)
        .count();
    println!(
        "\nsent {n}; delivered {delivered} ({} s to drain after the load stopped); peak queue {peak_queue}; peak RSS {} MiB",
        draining.elapsed().as_secs(),
        ingest::memory_kib(setup.server.pid, "VmHWM") / 1024
    );
    setup.stop(admin_url).await
}
