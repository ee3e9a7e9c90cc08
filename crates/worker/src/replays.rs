//! Bulk replays: one job per request, replaying a batch per transaction until the filter
//! runs dry or someone cancels. The replayed deliveries go through the normal queue, so
//! their destinations' rate limits, budgets and breakers apply as ever.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use chrono::Utc;
use switchyard_domain::store::queue::ReplayTask;
use switchyard_domain::store::replays::{self, Step};

use crate::WorkerContext;

/// Deliveries replayed per transaction.
const BATCH: i64 = 100;

pub async fn run(task: ReplayTask, ctx: Data<Arc<WorkerContext>>) -> Result<(), BoxDynError> {
    loop {
        let mut tx = ctx.pool.begin().await?;
        let step =
            replays::step(&mut tx, &task.team_id, &task.replay_id, BATCH, Utc::now()).await?;
        tx.commit().await?;
        match step {
            Step::Finished => {
                tracing::info!(replay = %task.replay_id, "bulk replay finished");
                return Ok(());
            }
            Step::Replayed(n) => {
                tracing::debug!(replay = %task.replay_id, n, "bulk replay batch");
                tokio::task::yield_now().await;
            }
        }
    }
}
