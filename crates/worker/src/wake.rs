//! Waking the queue's workers when a task is pushed.
//!
//! A trigger NOTIFYs `apalis::job::insert` when tasks are pushed (once per queue per
//! statement; see the migrations). apalis-postgres's own
//! listener gives every worker a connection of its own, read only when that worker is
//! ready for more work. Under load the notifications backed up on those sockets, and the
//! server, blocked writing them inside a transaction, held back the xmin horizon: no dead
//! row could be vacuumed or pruned, and every fetch and claim slowed until deliveries
//! fell behind for good. Here one task per process reads every notification as it comes
//! and turns them into one coalesced wake-up per queue, on a single connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

/// The channel apalis-postgres's insert trigger notifies.
const CHANNEL: &str = "apalis::job::insert";
/// How long to wait before listening again after the connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// One wake-up signal per queue, fed by [`listen`].
#[derive(Clone)]
pub struct Wakeups {
    queues: Arc<HashMap<&'static str, watch::Sender<()>>>,
}

impl Wakeups {
    pub fn new(queues: &[&'static str]) -> Wakeups {
        let queues = queues
            .iter()
            .map(|queue| (*queue, watch::channel(()).0))
            .collect();
        Wakeups {
            queues: Arc::new(queues),
        }
    }

    /// A stream that yields whenever a task was pushed to `queue` since it last yielded
    /// (any number of pushes make one item): a poll strategy for that queue's workers.
    pub fn stream(&self, queue: &str) -> Wake {
        let mut rx = self.queues[queue].subscribe();
        rx.mark_unchanged();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        });
        Wake(Mutex::new(stream.boxed()))
    }

    fn wake(&self, queue: &str) {
        if let Some(tx) = self.queues.get(queue) {
            tx.send_replace(());
        }
    }

    fn wake_all(&self) {
        for tx in self.queues.values() {
            tx.send_replace(());
        }
    }

    /// Reads notifications until the process ends, listening again whenever the
    /// connection is lost. Every queue is woken after a reconnect, since tasks pushed
    /// meanwhile were announced to nobody.
    pub async fn listen(self, pool: PgPool) {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::debug!(error = %e, "wake-ups: cannot connect; retrying");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::debug!(error = %e, "wake-ups: cannot listen; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            self.wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        // The trigger sends `{"job_type": …, "id": …}`.
                        let inserted: serde_json::Value =
                            serde_json::from_str(notification.payload()).unwrap_or_default();
                        match inserted["job_type"].as_str() {
                            Some(queue) => self.wake(queue),
                            None => self.wake_all(),
                        }
                    }
                    // The connection dropped and was made again: notifications sent
                    // meanwhile are lost.
                    Ok(None) => self.wake_all(),
                    Err(e) => {
                        tracing::debug!(error = %e, "wake-ups: listener failed; reconnecting");
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        break;
                    }
                }
            }
        }
    }
}

/// A queue's wake-up stream (see [`Wakeups::stream`]). Behind a mutex only because the
/// poll strategy must be `Sync`.
pub struct Wake(Mutex<BoxStream<'static, ()>>);

impl Stream for Wake {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        match self.get_mut().0.get_mut() {
            Ok(stream) => stream.poll_next_unpin(cx),
            Err(_) => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn many_pushes_make_one_wake_up_and_only_for_their_queue() {
        let wakeups = Wakeups::new(&["a", "b"]);
        let mut a = wakeups.stream("a");
        let mut b = wakeups.stream("b");
        for _ in 0..100 {
            wakeups.wake("a");
        }
        assert_eq!(a.next().await, Some(()));
        let quiet = tokio::time::timeout(Duration::from_millis(50), a.next()).await;
        assert!(quiet.is_err(), "a hundred pushes, one wake-up");
        let quiet = tokio::time::timeout(Duration::from_millis(50), b.next()).await;
        assert!(quiet.is_err(), "queue b was not pushed to");
        wakeups.wake_all();
        assert_eq!(b.next().await, Some(()));
    }
}
