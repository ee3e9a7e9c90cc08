//! The delivery engine. The deliveries table is the queue: a claimer takes due
//! deliveries from it in batches, no more than this process has free send slots, and
//! hands each to the apalis worker that sends it ([`Deliveries`] is that worker's
//! backend); outcomes go to a committer that records many per transaction.
//!
//! ```text
//! ingest commit ─NOTIFY─▶ claimer ─batch claim (1 commit)─▶ apalis worker: send ─▶ committer (1 commit per batch)
//! ```

mod backend;
mod committer;
mod slots;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchyard_domain::StoreError;
use tokio::time::Instant;

pub use backend::{Attempt, Deliveries};
pub use committer::Committer;
pub use slots::{IN_PROGRESS_PER_SLOT, Slot, Slots};

use crate::WorkerContext;
use crate::enrich::Enricher;
use crate::wake::Signal;

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Requests this process has out at once (see `slots`).
    pub send_slots: usize,
    /// Requests one destination may have out from this process at once.
    pub per_destination: usize,
    /// How long a claimed delivery is this process's. Past it, a claim anywhere takes
    /// it over; a send that could not end within it is not started.
    pub lease: Duration,
    /// The most one send may take, answer included.
    pub send_timeout: Duration,
}

/// What the claimer, the sends and the committer share.
pub struct Engine {
    pub context: Arc<WorkerContext>,
    pub settings: EngineSettings,
    pub slots: Arc<Slots>,
    pub committer: Committer,
    /// Rung when deliveries become due.
    pub wake: Arc<Signal>,
    /// Fetches the Anthropic objects enriching routes render, once per event.
    pub enricher: Enricher,
}

impl Engine {
    pub fn new(context: Arc<WorkerContext>, settings: EngineSettings, wake: Arc<Signal>) -> Engine {
        let committer = Committer::start(context.pool.clone(), context.breaker, 2);
        Engine {
            slots: Slots::new(settings.send_slots),
            context,
            settings,
            committer,
            wake,
            enricher: Enricher::default(),
        }
    }

    /// Whether a send started now could end, and its outcome be recorded, before the
    /// lease that began at `lease_started` runs out. Half of what the lease leaves beyond
    /// a send is kept for the outcome's commit; the rest is what may pass between the
    /// claim and the send.
    pub fn lease_covers_a_send(&self, lease_started: Instant) -> bool {
        let EngineSettings {
            lease,
            send_timeout,
            ..
        } = self.settings;
        let for_the_outcome = lease.saturating_sub(send_timeout) / 2;
        Instant::now() + send_timeout + for_the_outcome <= lease_started + lease
    }
}

/// Runs a database step until it succeeds, waiting out an unreachable database for as
/// long as it takes rather than dropping the work: a claimed delivery stays this
/// process's until its lease runs out, and if the process dies meanwhile, a claim
/// elsewhere takes it over. Other errors are returned.
pub async fn persist<T, F, Fut>(step: F) -> Result<T, StoreError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(200);
    loop {
        match step().await {
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
