//! Group commit of outcomes. Finished attempts hand their outcome to a few committer
//! tasks; each takes whatever is waiting (up to `MAX_BATCH`) and records it in one
//! transaction, so one WAL flush covers many attempts. An attempt waits (holding its
//! place among the attempts in progress) until the commit that holds its outcome is
//! done. While the database is unreachable a batch is tried again until it goes through;
//! a batch that fails for another reason is recorded one outcome at a time, so one bad
//! row cannot fail the rest.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::delivery::breaker::BreakerPolicy;
use switchyard_domain::store::outcomes::{self, Finished, Recorded};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::persist;

/// Outcomes one transaction records at most.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Recorded, StoreError>>;

#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<(Finished, Reply)>,
}

impl Committer {
    pub fn start(pool: PgPool, breaker: BreakerPolicy, committers: usize) -> Committer {
        let (tx, rx) = mpsc::channel(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..committers.max(1) {
            tokio::spawn(run(pool.clone(), breaker, rx.clone()));
        }
        Committer { tx }
    }

    /// Records the outcome; resolves once the commit that holds it is done.
    pub async fn submit(&self, finished: Finished) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((finished, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

async fn run(
    pool: PgPool,
    breaker: BreakerPolicy,
    rx: Arc<Mutex<mpsc::Receiver<(Finished, Reply)>>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        commit(&pool, &breaker, &mut batch).await;
    }
}

async fn commit(pool: &PgPool, breaker: &BreakerPolicy, batch: &mut Vec<(Finished, Reply)>) {
    metrics::histogram!("switchyard_outcome_batch_size").record(batch.len() as f64);
    let (finished, replies): (Vec<Finished>, Vec<Reply>) = batch.drain(..).unzip();
    let started = Instant::now();
    match persist(|| write(pool, &finished, breaker)).await {
        Ok(recorded) => {
            metrics::histogram!("switchyard_outcome_commit_seconds")
                .record(started.elapsed().as_secs_f64());
            for (reply, recorded) in replies.into_iter().zip(recorded) {
                let _ = reply.send(Ok(recorded));
            }
        }
        Err(e) if finished.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = ?e, size = finished.len(), "shared outcome commit failed; recording one by one");
            for (one, reply) in finished.iter().zip(replies) {
                let single = std::slice::from_ref(one);
                let result = persist(|| write(pool, single, breaker))
                    .await
                    .map(|mut r| r.remove(0));
                let _ = reply.send(result);
            }
        }
    }
}

async fn write(
    pool: &PgPool,
    finished: &[Finished],
    breaker: &BreakerPolicy,
) -> Result<Vec<Recorded>, StoreError> {
    let mut tx = pool.begin().await?;
    let recorded = outcomes::record(&mut tx, finished, breaker, Utc::now()).await?;
    tx.commit().await?;
    Ok(recorded)
}
