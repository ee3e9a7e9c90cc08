//! Upkeep, once a minute in every worker process: give stranded deliveries a fresh task,
//! start the circuit breaker's probes whose cool-down has passed, and prune dedup rows
//! whose window has passed and sessions idle past their expiry. Safe to run in several processes at once (rows are taken
//! with SKIP LOCKED or re-checked; deletes are idempotent).

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use switchyard_domain::store::{accounts, attempts, destinations, events, queue, stats, throttle};

/// How long past due a delivery must be before the sweep takes it for stranded: well
/// beyond a send's 30 s limit and a dead worker's 30 s takeover.
const GRACE: chrono::Duration = chrono::Duration::minutes(15);

pub async fn run(pool: PgPool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The hour whose maintenance this process has offered (once per hour is enough).
    let mut offered: Option<String> = None;
    loop {
        tick.tick().await;
        let now = Utc::now();
        let rescued = match pool.acquire().await {
            Ok(mut conn) => attempts::rescue_stranded(&mut conn, now, GRACE).await,
            Err(e) => Err(e.into()),
        };
        match rescued {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "gave stranded deliveries a new task"),
            Err(e) => tracing::debug!(error = %e, "upkeep: rescue skipped"),
        }
        let probes = match pool.acquire().await {
            Ok(mut conn) => destinations::start_probes(&mut conn, now).await,
            Err(e) => Err(e.into()),
        };
        match probes {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "probing disabled destinations"),
            Err(e) => tracing::debug!(error = %e, "upkeep: probes skipped"),
        }
        if let Err(e) = accounts::prune_sessions(&pool, now).await {
            tracing::debug!(error = %e, "upkeep: session prune skipped");
        }
        // Every process offers the hour's maintenance; the queue keeps one.
        let hour = queue::MaintenanceTask::for_hour(now);
        if offered.as_deref() != Some(hour.slot.as_str()) {
            match queue::push_maintenance(&pool, &hour).await {
                Ok(pushed) => {
                    tracing::debug!(slot = %hour.slot, pushed, "maintenance offered");
                    offered = Some(hour.slot);
                }
                Err(e) => tracing::debug!(error = %e, "upkeep: maintenance not queued"),
            }
        }
        gauges(&pool, now).await;
        if let Err(e) = throttle::prune(&pool, now).await {
            tracing::debug!(error = %e, "upkeep: throttle prune skipped");
        }
        if let Err(e) = events::prune_dedup(&pool, now).await {
            tracing::debug!(error = %e, "upkeep: dedup prune skipped");
        }
    }
}

/// What `/metrics` reports about the backlog: each queue's depth and the age of its
/// oldest due task, held deliveries, and this process's pool.
async fn gauges(pool: &PgPool, now: chrono::DateTime<Utc>) {
    match stats::queues(pool, now).await {
        Ok(queues) => {
            for q in queues {
                let name = q.queue.trim_start_matches("switchyard::").to_owned();
                metrics::gauge!("switchyard_queue_depth", "queue" => name.clone())
                    .set(q.pending as f64);
                metrics::gauge!("switchyard_queue_oldest_pending_seconds", "queue" => name)
                    .set(q.oldest_seconds.unwrap_or(0.0).max(0.0));
            }
        }
        Err(e) => tracing::debug!(error = %e, "upkeep: queue depth skipped"),
    }
    match stats::held(pool).await {
        Ok(n) => metrics::gauge!("switchyard_deliveries_held").set(n as f64),
        Err(e) => tracing::debug!(error = %e, "upkeep: held count skipped"),
    }
    let idle = pool.num_idle() as f64;
    metrics::gauge!("switchyard_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("switchyard_db_pool_connections", "state" => "used")
        .set(f64::from(pool.size()) - idle);
}
