//! Waking the delivery claimers after an ingest commit. The notification goes out after
//! the commit, not in it: PostgreSQL holds the lock a NOTIFY takes until the
//! transaction's commit is flushed, so in the commit it would make every group commit
//! wait for the one before it. Here one task per process sends it on a connection of
//! its own, and any number of commits while one is being sent make one more. If it is
//! lost (the database went away just then), the claimers look anyway within a second.

use std::sync::Arc;

use sqlx::PgPool;
use switchyard_domain::store::queue;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Claimers {
    wanted: Arc<Notify>,
}

impl Claimers {
    pub fn start(pool: PgPool) -> Claimers {
        let wanted = Arc::new(Notify::new());
        tokio::spawn(send(pool, Arc::downgrade(&wanted)));
        Claimers { wanted }
    }

    /// Deliveries became due: wake the claimers (soon; coalesced).
    pub fn wake(&self) {
        self.wanted.notify_one();
    }
}

async fn send(pool: PgPool, wanted: std::sync::Weak<Notify>) {
    loop {
        let Some(wanted) = wanted.upgrade() else {
            return;
        };
        wanted.notified().await;
        drop(wanted);
        if let Err(e) = queue::notify_deliveries(&pool).await {
            tracing::debug!(error = %e, "could not wake the delivery claimers");
        }
    }
}
