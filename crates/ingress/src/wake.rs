//! Waking the delivery claimers after an ingest commit. The notification goes out after
//! the commit, not in it: PostgreSQL holds the lock a NOTIFY takes until the
//! transaction's commit is flushed, so in the commit it would make every group commit
//! wait for the one before it. Here one task per process sends it in a transaction of
//! its own, and any number of commits while one is being sent make one more. If one is
//! lost (the database went away just then), the claimers look anyway within a second.

use sqlx::PgPool;
use switchyard_domain::StoreError;
use switchyard_domain::store::queue;
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct Claimers {
    wanted: mpsc::Sender<()>,
}

impl Claimers {
    pub fn start(pool: PgPool) -> Claimers {
        // One waiting request is enough: a full channel is a wake-up already asked for.
        let (wanted, requests) = mpsc::channel(1);
        tokio::spawn(send(pool, requests));
        Claimers { wanted }
    }

    /// Deliveries became due: wake the claimers (soon; coalesced).
    pub fn wake(&self) {
        let _ = self.wanted.try_send(());
    }
}

/// Sends a wake-up per request until every `Claimers` is gone.
async fn send(pool: PgPool, mut requests: mpsc::Receiver<()>) {
    while requests.recv().await.is_some() {
        if let Err(e) = notify(&pool).await {
            tracing::warn!(error = %e, "could not wake the delivery claimers; they look within a second");
        }
    }
}

/// The NOTIFY, in a transaction that need not wait for its commit to be flushed: a
/// wake-up lost in a crash only means the claimers look at their next second.
async fn notify(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    queue::notify_deliveries(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
