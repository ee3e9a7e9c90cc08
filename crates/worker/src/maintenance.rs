//! The hourly maintenance: retention, run by whichever worker takes the hour's task. The
//! task is pushed by every process's upkeep, and the queue keeps one per hour.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::{Duration, Utc};
use switchyard_domain::store::queue::MaintenanceTask;
use switchyard_domain::store::retention;

use crate::Deliverer;

/// Rows deleted per statement.
const BATCH: i64 = 1000;
/// Statements per table per run, so one run ends; the next hour carries on.
const MAX_BATCHES: usize = 500;

pub async fn run(task: MaintenanceTask, ctx: Data<Arc<Deliverer>>) -> Result<(), BoxDynError> {
    let now = Utc::now();
    let mut events = 0;
    for (team, days) in retention::teams(&ctx.pool).await? {
        let before = now - Duration::days(i64::from(days));
        for _ in 0..MAX_BATCHES {
            let gone = retention::delete_events(&ctx.pool, &team, before, BATCH).await?;
            events += gone;
            if gone < BATCH as u64 {
                break;
            }
        }
    }
    let mut jobs = 0;
    for _ in 0..MAX_BATCHES {
        let gone = retention::delete_finished_jobs(&ctx.pool, now, BATCH).await?;
        jobs += gone;
        if gone < BATCH as u64 {
            break;
        }
    }
    tracing::info!(slot = %task.slot, events, jobs, "maintenance: retention applied");
    Ok(())
}
