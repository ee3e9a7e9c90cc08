//! Periodic work, run by whichever worker takes a slot's task. Every process's upkeep
//! offers each slot and the queue keeps one, so each runs once across replicas:
//! - each upkeep interval (a minute by default), the sweep: stranded deliveries get a new
//!   task and the circuit breaker's due probes start;
//! - each hour, retention: events past a team's retention, finished queue rows, expired
//!   dedup rows, idle sessions, old throttle windows and silent workers' rows.

use std::future::Future;
use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, Duration, Utc};
use switchyard_domain::StoreError;
use switchyard_domain::store::queue::{MaintenanceTask, SweepTask};
use switchyard_domain::store::{accounts, destinations, events, queue, retention, throttle};

use crate::Deliverer;

/// Rows deleted per statement.
const BATCH: i64 = 1000;
/// Statements per table per run, so one run ends; the next hour carries on.
const MAX_BATCHES: usize = 500;
/// How long past due a delivery must be before the sweep takes it for stranded: well
/// beyond a send's 30 s limit and a dead worker's 30 s takeover.
const GRACE: Duration = Duration::minutes(15);

/// The hour's retention (the maintenance queue).
pub async fn run(task: MaintenanceTask, ctx: Data<Arc<Deliverer>>) -> Result<(), BoxDynError> {
    retain(&ctx, &task.slot, Utc::now()).await?;
    Ok(())
}

/// An interval's sweep (the sweeps queue).
pub async fn sweep(_task: SweepTask, ctx: Data<Arc<Deliverer>>) -> Result<(), BoxDynError> {
    let now = Utc::now();
    let mut conn = ctx.pool.acquire().await?;
    let rescued = queue::rescue_stranded(&mut conn, now, GRACE).await?;
    if rescued > 0 {
        tracing::warn!(count = rescued, "gave stranded deliveries a new task");
    }
    let probes = destinations::start_probes(&mut conn, now).await?;
    if probes > 0 {
        tracing::info!(count = probes, "probing disabled destinations");
    }
    Ok(())
}

async fn retain(ctx: &Deliverer, slot: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let pool = &ctx.pool;
    let mut events = 0;
    for (team, days) in retention::teams(pool).await? {
        let before = now - Duration::days(i64::from(days));
        events += in_batches(BATCH as u64, || {
            retention::delete_events(pool, &team, before, BATCH)
        })
        .await?;
    }
    let jobs = in_batches(BATCH as u64, || {
        retention::delete_finished_jobs(pool, now, BATCH)
    })
    .await?;
    let dedup = in_batches(events::PRUNE_BATCH, || events::prune_dedup(pool, now)).await?;
    let sessions = accounts::prune_sessions(pool, now).await?;
    let throttle = throttle::prune(pool, now).await?;
    let workers = retention::delete_silent_workers(pool, now).await?;
    tracing::info!(
        slot,
        events,
        jobs,
        dedup,
        sessions,
        throttle,
        workers,
        "maintenance: retention applied"
    );
    Ok(())
}

/// Runs a batched delete until a batch comes back short (or [`MAX_BATCHES`] ran).
async fn in_batches<F, Fut>(batch: u64, mut delete: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let gone = delete().await?;
        total += gone;
        if gone < batch {
            break;
        }
    }
    Ok(total)
}
