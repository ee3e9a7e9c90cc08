//! The rejection log's writer. Refused requests are noted off the request path by one
//! task through a bounded queue: a flood of bad signatures costs at most one connection
//! and drops notes when the queue is full, instead of taking the pool from real webhooks.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use switchyard_domain::ids::{SourceId, TeamId};
use switchyard_domain::store::sources;
use tokio::sync::mpsc;

struct Rejection {
    team: TeamId,
    source: SourceId,
    reason: String,
    at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct RejectionLog {
    tx: mpsc::Sender<Rejection>,
}

impl RejectionLog {
    pub fn start(pool: PgPool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Rejection>(1024);
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let written = async {
                    let mut conn = pool.acquire().await?;
                    sources::record_rejection(&mut conn, &r.team, &r.source, &r.reason, r.at).await
                };
                if let Err(e) = written.await {
                    tracing::warn!(source = %r.source, error = %e, "could not record rejection");
                }
            }
        });
        RejectionLog { tx }
    }

    /// Notes a rejection, or drops it when the writer is behind.
    pub fn note(&self, team: TeamId, source: SourceId, reason: String) {
        let rejection = Rejection {
            team,
            source,
            reason,
            at: Utc::now(),
        };
        if self.tx.try_send(rejection).is_err() {
            metrics::counter!("switchyard_rejections_dropped_total").increment(1);
        }
    }
}
