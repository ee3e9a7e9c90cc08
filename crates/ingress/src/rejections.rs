//! The rejection log's writer. Refused requests are noted off the request path by one
//! task through a bounded queue: a flood of bad signatures costs at most one connection
//! and drops notes when the queue is full, instead of taking the pool from real webhooks.
//! Each source is also held to a few notes a second, so one noisy sender cannot crowd
//! out the others' notes; the store keeps only the newest 100 per source anyway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use switchyard_domain::ids::{SourceId, TeamId};
use switchyard_domain::store::sources::{self, Rejection};
use tokio::sync::mpsc;

/// Notes written per source per second at most.
const PER_SOURCE_PER_SECOND: u32 = 5;

struct Note {
    team: TeamId,
    source: SourceId,
    rejection: Rejection,
}

#[derive(Clone)]
pub struct RejectionLog {
    tx: mpsc::Sender<Note>,
}

impl RejectionLog {
    pub fn start(pool: PgPool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Note>(1024);
        tokio::spawn(async move {
            let mut limiter = Limiter::default();
            while let Some(note) = rx.recv().await {
                if !limiter.admit(&note.source, Instant::now()) {
                    metrics::counter!("switchyard_rejections_dropped_total").increment(1);
                    continue;
                }
                let written = async {
                    let mut conn = pool.acquire().await?;
                    sources::record_rejection(&mut conn, &note.team, &note.source, &note.rejection)
                        .await
                };
                if let Err(e) = written.await {
                    tracing::warn!(source = %note.source, error = %e, "could not record rejection");
                }
            }
        });
        RejectionLog { tx }
    }

    /// Notes a rejection, or drops it when the writer is behind.
    pub fn note(&self, team: TeamId, source: SourceId, rejection: Rejection) {
        let note = Note {
            team,
            source,
            rejection,
        };
        if self.tx.try_send(note).is_err() {
            metrics::counter!("switchyard_rejections_dropped_total").increment(1);
        }
    }
}

/// Fixed one-second windows per source.
#[derive(Default)]
struct Limiter {
    windows: HashMap<SourceId, (Instant, u32)>,
}

impl Limiter {
    fn admit(&mut self, source: &SourceId, now: Instant) -> bool {
        if self.windows.len() > 10_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
        }
        let (start, count) = self.windows.entry(source.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= PER_SOURCE_PER_SECOND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_gets_a_few_notes_a_second() {
        let mut limiter = Limiter::default();
        let (a, b) = (SourceId::generate(), SourceId::generate());
        let t0 = Instant::now();
        let admitted = (0..20).filter(|_| limiter.admit(&a, t0)).count();
        assert_eq!(admitted, PER_SOURCE_PER_SECOND as usize);
        assert!(limiter.admit(&b, t0), "another source has its own window");
        assert!(limiter.admit(&a, t0 + Duration::from_secs(1)));
    }
}
