//! The hour's maintenance, run by whichever worker takes its task: every process's
//! upkeep offers each hour and the queue keeps one, so it runs once across replicas.
//! Partitions: the coming week's days are made, and days past every team's retention
//! dropped. Retention: events past a shorter retention (their deliveries and attempts
//! with them), finished queue rows, expired dedup rows, idle sessions, old throttle
//! windows, silent workers' rows and the overview's hourly counts past a week; then any
//! open breaker whose probe went with its event gets another.

use std::future::Future;
use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, Duration, Utc};
use switchyard_domain::StoreError;
use switchyard_domain::store::queue::MaintenanceTask;
use switchyard_domain::store::{
    accounts, breaker, events, partitions as tables, retention, rollups, throttle,
};

use crate::{WorkerContext, partitions};

/// Rows deleted per statement.
const BATCH: i64 = 1000;
/// Statements per table per run, so one run ends; the next hour carries on.
const MAX_BATCHES: usize = 500;
/// The hour's retention (the maintenance queue).
pub async fn run(task: MaintenanceTask, ctx: Data<Arc<WorkerContext>>) -> Result<(), BoxDynError> {
    retain(&ctx, &task.slot, Utc::now()).await?;
    Ok(())
}

async fn retain(ctx: &WorkerContext, slot: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let pool = &ctx.pool;
    // The week ahead leaves days of room: a day that cannot be made now is tried again
    // next hour, and retention goes on.
    let made = partitions::ensure(pool, now).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "maintenance: partitions ahead not made");
        0
    });
    for table in tables::TABLES {
        let strays = tables::strays(pool, table).await?;
        if strays > 0 {
            tracing::error!(
                table = table.name,
                strays,
                "rows in the default partition: no partition covered their time"
            );
        }
    }
    let cap = i32::try_from(ctx.max_retention_days).unwrap_or(i32::MAX);
    let teams = retention::teams(pool, cap).await?;
    let longest = teams.iter().map(|&(_, days)| days).max().unwrap_or(cap);
    let retired = partitions::retire(pool, now - Duration::days(i64::from(longest))).await?;
    let mut events = 0;
    for (team, days) in teams {
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
    let hours = rollups::prune(pool, now - rollups::KEPT).await?;
    let probes = {
        let mut tx = pool.begin().await?;
        let repaired = breaker::repair_probes(&mut tx, now).await?;
        tx.commit().await?;
        repaired
    };
    tracing::info!(
        slot,
        partitions_made = made,
        partitions_detached = retired.detached.len(),
        partitions_dropped = retired.dropped.len(),
        partitions_held = ?retired.held,
        partitions_busy = ?retired.busy,
        deliveries_of_dropped_days = retired.deliveries,
        stray_rows = retired.strays,
        events,
        jobs,
        dedup,
        sessions,
        throttle,
        workers,
        hours,
        probes,
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
