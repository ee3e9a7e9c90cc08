//! The soak benchmark: measure the maximum ingest rate (concurrency 16, deliveries on),
//! then send at 70 % of it, open loop, for a long stretch with autovacuum on, and print
//! every window what drifts when something leaks or falls behind: the server's RSS, ack
//! p50/p99, deliveries per second, end-to-end p99, the delivery backlog and its oldest
//! due delivery, and the dead rows in `deliveries` and `attempts`.

use std::time::{Duration, Instant};

use switchyard_domain::store::stats;

use crate::ingest::{self, Autovacuum, Setup, ms, percentile};

/// The share of the measured maximum the soak sends at.
const LOAD: f64 = 0.7;

pub async fn run(
    admin_url: &str,
    minutes: u64,
    window: Duration,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let autovacuum = Autovacuum::on(admin_url).await?;
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
            max * LOAD
        }
    };
    println!(
        "soak: {rate:.0} webhooks/s (open loop, 1 KiB, one route to a local sink) for {minutes} min; a line per {} s\n",
        window.as_secs()
    );
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>9} {:>12} {:>9} {:>7} {:>11} {:>10} {:>8}",
        "t",
        "sent/s",
        "errors",
        "ack p50",
        "ack p99",
        "delivered/s",
        "e2e p99",
        "backlog",
        "oldest due",
        "dead rows",
        "RSS MiB"
    );

    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let (mut sent, mut acknowledged, mut peak_backlog) = (0usize, 0usize, 0i64);
    let mut arrivals_seen = setup.sink.arrivals.lock().expect("lock").len();
    while Instant::now() < end {
        let result = ingest::drive_at(&setup.client, &setup.hook, rate, window, 1).await;
        sent += result.accepted + result.errors;
        acknowledged += result.accepted;
        let arrived: Vec<Duration> = {
            let arrivals = setup.sink.arrivals.lock().expect("lock");
            let fresh = arrivals[arrivals_seen..]
                .iter()
                .filter(|a| a.phase == 1)
                .map(|a| a.latency)
                .collect();
            arrivals_seen = arrivals.len();
            fresh
        };
        let backlog = stats::backlog(&setup.pool, chrono::Utc::now()).await?;
        let queued = backlog.due + backlog.in_flight;
        peak_backlog = peak_backlog.max(queued);
        let dead: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables
             WHERE relname IN ('deliveries', 'attempts')",
        )
        .fetch_one(&setup.pool)
        .await?;
        let secs = result.elapsed.as_secs_f64();
        println!(
            "{:>5}s {:>9.0} {:>8} {:>9} {:>9} {:>12.0} {:>9} {:>7} {:>10.1}s {:>10} {:>8}",
            started.elapsed().as_secs(),
            (result.accepted + result.errors) as f64 / secs,
            result.errors,
            ms(percentile(&result.acks, 0.50)),
            ms(percentile(&result.acks, 0.99)),
            arrived.len() as f64 / secs,
            ms(percentile(&arrived, 0.99)),
            queued,
            backlog.oldest_due_seconds.unwrap_or(0.0).max(0.0),
            dead,
            ingest::memory_kib(setup.server.pid, "VmRSS") / 1024,
        );
    }
    // Whatever is still queued: how long it takes to drain once the load stops.
    let draining = Instant::now();
    ingest::wait_delivered(&setup.sink, 1, acknowledged).await;
    let delivered = setup.sink.of_phase(1).len();
    println!(
        "\nsent {sent}; acknowledged {acknowledged}; delivered {delivered} ({} s to drain after the load stopped); peak backlog {peak_backlog}; peak RSS {} MiB",
        draining.elapsed().as_secs(),
        ingest::memory_kib(setup.server.pid, "VmHWM") / 1024
    );
    setup.stop(admin_url).await?;
    autovacuum.restore(admin_url).await
}
