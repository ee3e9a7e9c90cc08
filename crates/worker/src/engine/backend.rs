//! The apalis backend over the deliveries table. A claimer task claims batches (see
//! `store::claim`) and passes each started attempt, with its send slot, to the apalis
//! worker, which runs the sends: its concurrency, graceful shutdown and middleware are
//! apalis's. The claimer claims only for free slots, and the worker runs more attempts
//! at once than there are slots, so an attempt is picked up as soon as it is claimed.
//!
//! When to claim: at once while claims come back full; otherwise when the ingest commit
//! (or a replay, or a resume) notifies, when the earliest queued delivery falls due, when
//! a crowded destination's send ends, and at least once a second.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{Backend, Task, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::layers::Identity;
use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use switchyard_domain::StoreError;
use switchyard_domain::store::attempts::Claimed;
use switchyard_domain::store::claim::{self, ClaimBatch, ClaimRequest};
use switchyard_domain::store::outcomes::{Finished, Report};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::{Engine, Slot};

/// Deliveries one claim starts at most: a bigger backlog is claimed again at once, in
/// statements (and result sets of event bodies) of a bounded size.
const MAX_CLAIM: usize = 128;
/// The longest a claimer sleeps between claims, whatever it expects.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The first pause after a failed claim; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One started attempt, as the apalis worker runs it.
pub struct Attempt {
    pub claimed: Box<Claimed>,
    /// Its send slot, given back when the answer is in, and its place among the
    /// attempts in progress, given back when its outcome is recorded.
    pub slot: Slot,
    /// When the claim that started it began: its lease runs from then.
    pub lease_started: Instant,
}

/// The backend: started attempts from this process's claimer.
pub struct Deliveries {
    attempts: mpsc::Receiver<Task<Attempt>>,
    stop: Arc<Stop>,
    engine: Arc<Engine>,
    releasing: Option<BoxFuture<'static, ()>>,
}

impl Deliveries {
    /// Starts a claimer that feeds the new backend.
    pub fn new(engine: Arc<Engine>) -> Deliveries {
        let (tx, attempts) =
            mpsc::channel(engine.settings.send_slots.max(1) * super::IN_PROGRESS_PER_SLOT);
        let stop = Arc::new(Stop::default());
        tokio::spawn(claim_loop(engine.clone(), tx, stop.clone()));
        Deliveries {
            attempts,
            stop,
            engine,
            releasing: None,
        }
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.stop.set();
    }
}

impl Backend for Deliveries {
    type Task = Task<Attempt>;
    type Error = Infallible;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Task<Attempt>, Infallible>>> {
        self.attempts.poll_recv(cx).map(|task| task.map(Ok))
    }

    /// Stops the claimer, lets a claim it is making finish, and gives back whatever it
    /// claimed that the worker will not send: those deliveries are due again at once.
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Infallible>> {
        self.stop.set();
        loop {
            if let Some(releasing) = &mut self.releasing {
                futures::ready!(releasing.poll_unpin(cx));
                self.releasing = None;
            }
            match futures::ready!(self.attempts.poll_recv(cx)) {
                Some(task) => {
                    let engine = self.engine.clone();
                    self.releasing = Some(release(engine, task.args).boxed());
                }
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl BackendConfig for Deliveries {
    type Args = Attempt;
    type Id = ();
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Identity {
        Identity::new()
    }
}

/// Asks the claimer to end after the claim it is making.
#[derive(Default)]
struct Stop {
    set: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    async fn stopped(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// Gives a claimed attempt back unsent.
async fn release(engine: Arc<Engine>, attempt: Attempt) {
    let finished = Finished {
        claimed: *attempt.claimed,
        report: Report::NotSent {
            reason: "not sent: its worker was stopping".to_owned(),
        },
    };
    if let Err(e) = engine.committer.submit(finished).await {
        tracing::warn!(error = %e, "could not give back a claimed delivery; its lease will run out");
    }
}

async fn claim_loop(engine: Arc<Engine>, tx: mpsc::Sender<Task<Attempt>>, stop: Arc<Stop>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let room = tokio::select! {
            room = engine.slots.reserve(MAX_CLAIM) => room,
            () = stop.stopped() => return,
        };
        let seen = engine.wake.seen();
        let lease_started = Instant::now();
        let batch = match claim(&engine, room.len()).await {
            Ok(batch) => {
                backoff = FIRST_BACKOFF;
                batch
            }
            Err(e) => {
                drop(room);
                tracing::warn!(error = %e, "claim failed; trying again");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.stopped() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        metrics::histogram!("switchyard_claim_seconds")
            .record(lease_started.elapsed().as_secs_f64());
        metrics::histogram!("switchyard_claim_batch_size").record(batch.claimed.len() as f64);
        if batch.taken_over > 0 {
            tracing::warn!(
                count = batch.taken_over,
                "took over deliveries whose lease ran out"
            );
            metrics::counter!("switchyard_lease_takeovers_total")
                .increment(batch.taken_over as u64);
        }
        let ClaimBatch {
            claimed,
            more,
            crowded,
            next_due,
            ..
        } = batch;
        let mut room = room.into_iter();
        let mut handed_over = true;
        for claimed in claimed {
            let Some(reserved) = room.next() else {
                break;
            };
            let slot = engine
                .slots
                .assign(reserved, claimed.delivery.destination_id.clone());
            let attempt = Attempt {
                claimed: Box::new(claimed),
                slot,
                lease_started,
            };
            if !handed_over {
                release(engine.clone(), attempt).await;
                continue;
            }
            if let Err(mpsc::error::SendError(task)) = tx.send(Task::new(attempt)).await {
                // The worker is gone without closing its backend.
                handed_over = false;
                release(engine.clone(), task.args).await;
            }
        }
        drop(room);
        if !handed_over || stop.is_set() {
            return;
        }
        if more {
            continue;
        }
        let wait = next_due
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            () = engine.wake.changed_since(seen) => {}
            () = tokio::time::sleep(wait) => {}
            () = engine.slots.freed(), if crowded => {}
            () = stop.stopped() => return,
        }
    }
}

async fn claim(engine: &Engine, limit: usize) -> Result<ClaimBatch, StoreError> {
    let busy = engine.slots.busy();
    let request = ClaimRequest {
        limit,
        per_destination: engine.settings.per_destination,
        busy: &busy,
        lease: engine.settings.lease,
    };
    let mut conn = engine.context.pool.acquire().await?;
    claim::claim(&mut conn, &request, Utc::now()).await
}
