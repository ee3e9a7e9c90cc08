//! Group commit. Requests hand their event to a small set of committer tasks; each takes
//! whatever is waiting (up to `MAX_BATCH`) and writes it in one transaction, so one WAL
//! flush acknowledges many webhooks. No request is answered before the commit that holds
//! it. If a shared commit fails for a reason other than an unreachable database, its
//! events are retried one transaction each, so one bad row cannot fail its neighbours.

use std::sync::Arc;

use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::model::NewEvent;
use switchyard_domain::store::events::{self, Ingested};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::wake::Claimers;

const MAX_BATCH: usize = 128;
/// Bodies one transaction carries at most: a batch of large bodies is split, since a
/// single `bytea[]` parameter must stay far below PostgreSQL's 1 GiB value limit.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

type Reply = oneshot::Sender<Result<Ingested, StoreError>>;

#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

impl Committer {
    pub fn start(pool: PgPool, committers: usize, claimers: Claimers) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers.max(1) {
            tokio::spawn(run(pool.clone(), rx.clone(), claimers.clone()));
        }
        Committer { tx }
    }

    /// Makes the event durable; resolves once its commit has happened (or failed).
    pub async fn submit(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((event, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

async fn run(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<(NewEvent, Reply)>>>, claimers: Claimers) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        while !batch.is_empty() {
            let mut part = take_within_bytes(&mut batch);
            // Whether an event of it goes anywhere: its deliveries are due once it commits.
            let routed = part
                .iter()
                .any(|(e, _)| e.deliveries.iter().any(|t| t.failure.is_none()));
            if commit(&pool, &mut part).await && routed {
                claimers.wake();
            }
        }
    }
}

/// The longest prefix of `batch` (at least one event) whose bodies fit one transaction.
fn take_within_bytes(batch: &mut Vec<(NewEvent, Reply)>) -> Vec<(NewEvent, Reply)> {
    let mut bytes = 0;
    let n = batch
        .iter()
        .take_while(|(e, _)| {
            bytes += e.body.len();
            bytes <= MAX_BATCH_BYTES
        })
        .count()
        .max(1);
    batch.drain(..n).collect()
}

/// Writes the batch; whether anything of it committed.
async fn commit(pool: &PgPool, batch: &mut Vec<(NewEvent, Reply)>) -> bool {
    metrics::histogram!("switchyard_ingest_batch_size").record(batch.len() as f64);
    let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
    match write(pool, &events).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
            true
        }
        Err(e) if events.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
            false
        }
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "ingest commit failed: database unavailable");
            for reply in replies {
                let _ = reply.send(Err(closed()));
            }
            false
        }
        Err(e) => {
            tracing::warn!(error = ?e, size = events.len(), "shared commit failed; retrying one by one");
            let mut any = false;
            for (event, reply) in events.iter().zip(replies) {
                let result = write(pool, std::slice::from_ref(event))
                    .await
                    .map(|mut r| r.remove(0));
                any |= result.is_ok();
                let _ = reply.send(result);
            }
            any
        }
    }
}

async fn write(pool: &PgPool, events: &[NewEvent]) -> Result<Vec<Ingested>, StoreError> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let results = events::ingest(&mut tx, events).await?;
    let committing = std::time::Instant::now();
    tx.commit().await?;
    metrics::histogram!("switchyard_ingest_write_seconds")
        .record(committing.duration_since(started).as_secs_f64());
    metrics::histogram!("switchyard_ingest_fsync_seconds")
        .record(committing.elapsed().as_secs_f64());
    Ok(results)
}
