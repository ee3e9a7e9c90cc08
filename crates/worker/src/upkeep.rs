//! Upkeep, each interval (a minute by default) in every worker process: offer the
//! interval's sweep and the hour's retention to their queues, which keep one task per
//! slot so one worker across replicas runs each (see `maintenance`), and refresh this
//! process's gauges.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use switchyard_domain::store::{queue, stats};

pub async fn run(pool: PgPool, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The hour whose retention this process has offered (once per hour is enough).
    let mut offered: Option<String> = None;
    loop {
        tick.tick().await;
        let now = Utc::now();
        let sweep = queue::SweepTask::for_interval(now, every);
        if let Err(e) = queue::push_sweep(&pool, &sweep).await {
            tracing::debug!(error = %e, "upkeep: sweep not queued");
        }
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
